"""`promptopt serve` with the real `openai` SDK (sync, async, streaming) against a real uvicorn
server on 127.0.0.1, in front of the scripted FakeLLM: alignment applied, parameters passed
through, errors mapped to HTTP statuses, keys never logged, a bounded load test that loses nothing."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

openai = pytest.importorskip("openai")
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from promptopt.aligned import AlignedLLM, instruction_from_run  # noqa: E402
from promptopt.cli import main  # noqa: E402
from promptopt.errors import RunDirError  # noqa: E402
from promptopt.llm.base import (  # noqa: E402
    LLMAuthError,
    LLMBadRequestError,
    LLMRateLimitError,
    LLMServerError,
    LLMTimeoutError,
    Request,
)
from promptopt.llm.fake import FakeLLM, request_text  # noqa: E402
from promptopt.llm.openai_compat import from_spec  # noqa: E402
from promptopt.serve.app import ServeState, Upstream, create_app  # noqa: E402
from promptopt.serve.runner import BackgroundServer, bind  # noqa: E402


class StubRewriter:
    name = "/models/stub-rewriter"

    def rewrite(self, prompts, settings):
        return [p if p.startswith("keep") else f"Rewritten: {p}" for p in prompts]


def reply(request: Request, i: int) -> Any:
    text = request_text(request)
    for marker, error in (
        (
            "FAIL500",
            LLMServerError("openai:up@http://10.0.0.7:9000/v1: server error (HTTP 503) after 5 attempts"),
        ),
        ("FAIL429", LLMRateLimitError("up: rate limited (HTTP 429)")),
        ("FAILTIME", LLMTimeoutError("up: no answer within 60s")),
        ("FAIL400", LLMBadRequestError("up: request rejected (HTTP 400): context too long")),
        ("FAILAUTH", LLMAuthError("up: the server rejected the API key (HTTP 401)")),
    ):
        if marker in text:
            return error
    params = f"t={request.temperature} p={request.top_p} max={request.max_tokens} stop={list(request.stop)} seed={request.seed}"
    return f"[{i}] {text} | {params}"


@pytest.fixture
def fake() -> FakeLLM:
    return FakeLLM(fn=reply)


def serve(llm: Any, **state: Any) -> BackgroundServer:
    return BackgroundServer(create_app(ServeState(Upstream(lambda key: llm), **state))).start()


@pytest.fixture
def aligned_server(fake: FakeLLM) -> Iterator[BackgroundServer]:
    srv = serve(AlignedLLM(fake, rewriter=StubRewriter(), instruction="Answer briefly.", position="Q_end"))
    yield srv
    srv.stop()


def client(srv: BackgroundServer, key: str = "unused") -> Any:
    return openai.OpenAI(base_url=srv.base_url, api_key=key, max_retries=0, timeout=10)


def test_sync_chat_is_rewritten_then_instructed_and_parameters_pass_through(
    aligned_server: BackgroundServer, fake: FakeLLM
) -> None:
    c = client(aligned_server)
    assert [m.id for m in c.models.list().data] == ["promptopt"]
    out = c.chat.completions.create(
        model="promptopt",
        messages=[{"role": "system", "content": "be nice"}, {"role": "user", "content": "2+2?"}],
        temperature=0.25, top_p=0.5, max_tokens=9, stop=["###"], seed=3, n=2,
    )  # fmt: skip
    sent = fake.calls[-1]
    assert sent.messages[0].content == "be nice"
    assert sent.messages[-1].content == "Rewritten: 2+2?\n\nAnswer briefly."
    assert (sent.temperature, sent.top_p, sent.max_tokens, sent.stop, sent.seed, sent.n) == (
        0.25, 0.5, 9, ("###",), 3, 2,
    )  # fmt: skip
    assert [ch.index for ch in out.choices] == [0, 1]
    assert out.choices[1].message.content.startswith("[1] be nice")
    assert out.choices[1].finish_reason == "length"  # the fake stops at max_tokens words
    assert out.model == "promptopt" and out.usage.total_tokens > 0


def test_streaming_and_completions_and_async(aligned_server: BackgroundServer, fake: FakeLLM) -> None:
    c = client(aligned_server)
    chunks = list(
        c.chat.completions.create(
            model="promptopt",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text.startswith("[0] Rewritten: hi\n\nAnswer briefly.")
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    comp = c.completions.create(model="promptopt", prompt=["keep a", "b"], max_tokens=4)
    assert [r.prompt for r in fake.calls[-2:]] == [
        "keep a\n\nAnswer briefly.",
        "Rewritten: b\n\nAnswer briefly.",
    ]
    assert [ch.index for ch in comp.choices] == [0, 1] and comp.choices[1].text.startswith("[0] Rewritten: b")
    streamed = "".join(
        ch.choices[0].text
        for ch in c.completions.create(model="promptopt", prompt="z", stream=True)
        if ch.choices
    )
    assert streamed.startswith("[0] Rewritten: z")

    async def go() -> list[str]:
        ac = openai.AsyncOpenAI(base_url=aligned_server.base_url, api_key="x", max_retries=0)
        try:
            outs = await asyncio.gather(
                *(
                    ac.chat.completions.create(
                        model="promptopt", messages=[{"role": "user", "content": f"q{i}"}]
                    )
                    for i in range(5)
                )
            )
            stream = await ac.chat.completions.create(
                model="promptopt", messages=[{"role": "user", "content": "s"}], stream=True
            )
            parts = [ch.choices[0].delta.content or "" async for ch in stream if ch.choices]
            return [o.choices[0].message.content for o in outs] + ["".join(parts)]
        finally:
            await ac.close()

    texts = asyncio.run(go())
    assert all(t.startswith(f"[0] Rewritten: q{i}") for i, t in enumerate(texts[:5]))
    assert texts[5].startswith("[0] Rewritten: s")


@pytest.mark.parametrize(
    ("marker", "error", "status"),
    [
        ("FAIL500", openai.InternalServerError, 502),
        ("FAIL429", openai.RateLimitError, 429),
        ("FAILTIME", openai.InternalServerError, 504),
        ("FAIL400", openai.BadRequestError, 400),
        ("FAILAUTH", openai.InternalServerError, 502),
    ],
)
def test_upstream_failures_are_http_errors_that_hide_the_upstream(
    fake: FakeLLM, marker: str, error: type, status: int
) -> None:
    with serve(fake) as srv:
        with pytest.raises(error) as info:
            client(srv).chat.completions.create(
                model="promptopt", messages=[{"role": "user", "content": marker}]
            )
    assert info.value.status_code == status
    assert "10.0.0.7" not in str(info.value) and "openai:up" not in str(info.value)
    if marker == "FAIL400":
        assert "context too long" in str(info.value)


def test_bad_requests_are_400_naming_the_field(fake: FakeLLM) -> None:
    with serve(fake) as srv:
        c = client(srv)
        with pytest.raises(openai.BadRequestError) as info:
            c.chat.completions.create(
                model="promptopt", messages=[{"role": "user", "content": "q"}], temperature=5
            )
        assert "temperature" in str(info.value)
        import urllib.error
        import urllib.request

        req = urllib.request.Request(f"{srv.base_url}/chat/completions", data=b"{not json", method="POST")
        with pytest.raises(urllib.error.HTTPError) as http:
            urllib.request.urlopen(req, timeout=5)
        assert (
            http.value.code == 400
            and json.loads(http.value.read())["error"]["type"] == "invalid_request_error"
        )


def test_api_key_protects_everything_but_health_and_is_never_logged(
    fake: FakeLLM, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="promptopt")
    with serve(fake, api_key="s3cret-key") as srv:
        for key in ("wrong", ""):
            with pytest.raises(openai.AuthenticationError):
                client(srv, key or "none").chat.completions.create(
                    model="promptopt", messages=[{"role": "user", "content": "q"}]
                )
        with pytest.raises(openai.AuthenticationError):
            client(srv, "wrong").models.list()
        ok = client(srv, "s3cret-key").chat.completions.create(
            model="promptopt", messages=[{"role": "user", "content": "private question"}]
        )
        assert ok.choices[0].message.content
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{srv.port}/health", timeout=5) as resp:
            health = json.loads(resp.read())
        assert health["status"] == "ok" and health["requests"] == 3 and health["errors"] == 2
    lines = [r.getMessage() for r in caplog.records if r.name == "promptopt.serve"]
    assert len(lines) == 3 and lines[-1].startswith("POST /v1/chat/completions 200")
    assert "rewritten=no instructed=no" in lines[-1] and "prompt_tokens=" in lines[-1]
    logged = caplog.text
    assert "s3cret-key" not in logged and "wrong" not in logged and "private question" not in logged


def test_log_prompts_puts_the_prompt_in_the_log(fake: FakeLLM, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="promptopt")
    with serve(AlignedLLM(fake, rewriter=StubRewriter()), log_prompts=True) as srv:
        client(srv).chat.completions.create(
            model="promptopt", messages=[{"role": "user", "content": "tell me"}]
        )
    [line] = [r.getMessage() for r in caplog.records if r.name == "promptopt.serve"]
    assert "rewritten=yes instructed=no" in line and "prompt='tell me' sent='Rewritten: tell me'" in line


def test_forward_auth_sends_the_client_key_upstream_and_nowhere_else(
    fault_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="promptopt")
    up = fault_server()
    upstream = Upstream(lambda key: from_spec(f"stub@{up.base_url}", api_key=key), forward_auth=True)
    with BackgroundServer(create_app(ServeState(upstream))) as srv:
        for key in ("sk-alice-123", "sk-bob-456", "sk-alice-123"):
            client(srv, key).chat.completions.create(
                model="promptopt", messages=[{"role": "user", "content": "q"}]
            )
        bare = openai.OpenAI(
            base_url=srv.base_url, api_key="x", max_retries=0, default_headers={"Authorization": ""}
        )
        with pytest.raises(openai.AuthenticationError):
            bare.chat.completions.create(model="promptopt", messages=[{"role": "user", "content": "q"}])
    assert up.auth == ["Bearer sk-alice-123", "Bearer sk-bob-456", "Bearer sk-alice-123"]
    assert len(upstream.all()) == 0  # closed and dropped at shutdown
    assert "sk-alice" not in caplog.text and "sk-bob" not in caplog.text


@pytest.mark.slow
def test_load_500_requests_at_32_concurrent_lose_none() -> None:
    """A bounded load test against an instant upstream: every request answered, in order."""
    fake = FakeLLM(fn=lambda r, i: f"answer to {request_text(r)}")
    with serve(AlignedLLM(fake, instruction="Be exact.")) as srv:

        async def go() -> list[str]:
            ac = openai.AsyncOpenAI(base_url=srv.base_url, api_key="x", max_retries=0, timeout=30)
            sem = asyncio.Semaphore(32)

            async def one(i: int) -> str:
                async with sem:
                    out = await ac.chat.completions.create(
                        model="promptopt", messages=[{"role": "user", "content": f"n{i}"}]
                    )
                    return out.choices[0].message.content or ""

            try:
                return await asyncio.gather(*(one(i) for i in range(500)))
            finally:
                await ac.close()

        started = time.perf_counter()
        answers = asyncio.run(go())
        elapsed = time.perf_counter() - started
    assert answers == [f"answer to Be exact.\n\nn{i}" for i in range(500)]
    assert len(fake.calls) == 500 and elapsed < 60


def test_instruction_from_run(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(
        json.dumps({"task": "instructions", "task_config": {"position": "Q_end", "rewriter": "rw/"}})
    )
    (run / "result.json").write_text(json.dumps({"task": "instructions", "best": "train best", "best_score": 71.0,
                                                 "report": {"task": {"instruction": "validated", "position": "Q_end"}}}))  # fmt: skip
    found = instruction_from_run(run)
    assert (found.text, found.position, found.rewriter, found.score) == ("validated", "Q_end", "rw/", 71.0)
    (run / "result.json").write_text(json.dumps({"task": "instructions", "best": "so far", "report": {}}))
    assert instruction_from_run(run).text == "so far"
    (run / "result.json").write_text(json.dumps({"task": "tsp", "best": "0,1,2"}))
    with pytest.raises(RunDirError, match="task 'tsp'"):
        instruction_from_run(run)
    with pytest.raises(RunDirError, match="no result.json"):
        instruction_from_run(tmp_path)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--instruction", "x", "--instruction-from", "."], "not both"),
        (["--api-key", "k", "--forward-auth"], "choose one"),
        (["--position", "Q_end"], "--position places an instruction"),
        (["--forward-auth"], "apply to openai: targets"),
        (["--max-concurrency", "0"], "--max-concurrency"),
        (["--instruction", "x", "--position", "middle"], "unknown instruction position"),
        (["--instruction-from", "/no/such/run"], "no result.json"),
        (["--rewrite-mode", "aggressive"], "apply to --rewriter"),
        (["--max-body-bytes", "0"], "--max-body-bytes must be a positive integer"),
    ],
)
def test_cli_bad_input_is_one_line(args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["serve", "--target", "fake:x", "--port", "0", *args])
    err = capsys.readouterr().err
    assert info.value.code == 2 and message in err and len(err.strip().splitlines()) == 1, err


def test_cli_busy_port_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    sock = bind("127.0.0.1", 0)
    try:
        with pytest.raises(SystemExit) as info:
            main(["serve", "--target", "fake:x", "--port", str(sock.getsockname()[1])])
    finally:
        sock.close()
    err = capsys.readouterr().err
    assert info.value.code == 2 and "cannot listen on 127.0.0.1" in err


def test_bound_socket_says_tcp_so_asyncio_disables_nagle() -> None:
    """Without proto=IPPROTO_TCP asyncio leaves Nagle on and each answer waited ~40 ms."""
    import socket

    sock = bind("127.0.0.1", 0)
    try:
        assert sock.proto == socket.IPPROTO_TCP
    finally:
        sock.close()
