"""The openai: backend against a real local fault-injecting server (tests/servers/fault_server.py).

Timeouts and backoff are tiny so the whole file runs in a few seconds; nothing asserts on timing.
"""

from __future__ import annotations

import base64
import logging
from types import SimpleNamespace
from typing import Any

import pytest

from promptopt.errors import ConfigError, PromptoptError
from promptopt.llm.base import (
    LLM,
    Completion,
    LLMAuthError,
    LLMBadRequestError,
    LLMConnectionError,
    LLMError,
    LLMRateLimitError,
    LLMResponseError,
    LLMServerError,
    LLMTimeoutError,
    Request,
    run_sync,
)
from promptopt.llm.openai_compat import (
    Backoff,
    OpenAICompatLLM,
    from_spec,
    public_url,
    resolve_endpoint,
    retry_after_seconds,
    split_spec,
)
from promptopt.llm.registry import create_backend
from tests.servers.fault_server import Fault, FaultServer

MARKER = "sk-MARKER-do-not-leak-4711"
FAST = {"timeout": 0.5, "backoff": 0.01, "backoff_max": 0.02, "retry_after_max": 0.05}


def llm_for(srv: FaultServer, **options: Any) -> OpenAICompatLLM:
    return from_spec(f"stub@{srv.base_url}", **{**FAST, **options})


@pytest.fixture(autouse=True)
def _no_ambient_openai_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The developer's own key or base URL must not change what these tests see."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)


# --------------------------------------------------------------------------- spec, key, name


def test_spec_split_keeps_at_signs_in_model_and_credentials_in_url() -> None:
    assert split_spec("gpt-4o-mini") == ("gpt-4o-mini", None)
    assert split_spec("org/m@v2@http://u:p@host:8000/v1") == ("org/m@v2", "http://u:p@host:8000/v1")
    assert public_url("http://user:pw@host:8000/v1/?key=abc#f") == "http://host:8000/v1"


def test_name_never_carries_credentials_and_backend_is_registered() -> None:
    llm = create_backend("openai:m@http://alice:s3cret-pw@127.0.0.1:9/v1?api-key=q123")
    assert isinstance(llm, LLM)
    assert llm.name == "openai:m@http://127.0.0.1:9/v1"
    assert "s3cret" not in repr(llm) and "q123" not in repr(llm)
    assert from_spec("gpt-4o-mini", api_key=MARKER).name == "openai:gpt-4o-mini"
    assert MARKER not in repr(from_spec("gpt-4o-mini", api_key=MARKER))


def test_missing_key_for_openai_is_a_one_line_auth_error() -> None:
    with pytest.raises(LLMAuthError) as info:
        create_backend("openai:gpt-4o-mini")
    msg = str(info.value)
    assert "OPENAI_API_KEY" in msg and "\n" not in msg


def test_missing_key_for_remote_server_is_an_auth_error_but_local_gets_dummy_key() -> None:
    with pytest.raises(LLMAuthError):
        from_spec("m@https://example.invalid/v1")
    for url in ("http://localhost:8000/v1", "http://127.0.0.1:8000/v1", "http://[::1]:8000/v1"):
        assert resolve_endpoint(f"m@{url}").api_key == "EMPTY"


@pytest.mark.parametrize(
    ("rest", "options"),
    [
        ("", {}),
        ("@http://127.0.0.1:1/v1", {}),
        ("m@ftp://x/v1", {}),
        ("m", {"api_key": "k", "temperature": 1}),
    ],
)
def test_bad_spec_or_option_is_a_config_error(rest: str, options: dict[str, Any]) -> None:
    with pytest.raises(PromptoptError) as info:
        from_spec(rest, **options)
    assert isinstance(info.value, ConfigError) and "\n" not in str(info.value)


# --------------------------------------------------------------------------- happy path


def test_chat_request_round_trip_passes_sampling_params(fault_server: Any) -> None:
    srv = fault_server()
    llm = llm_for(srv)
    req = Request.chat(
        "hello world", system="be brief", temperature=0.7, top_p=0.9, max_tokens=12, stop=["\n"], seed=0
    )
    [out] = llm.generate([req])
    assert isinstance(out, Completion)
    assert out.text == "echo: hello world [seed=0]"  # seed 0 is a real seed, sent as such
    assert out.usage.calls == 1 and out.usage.prompt_tokens == 2 and out.model == llm.name
    body = srv.bodies[0]
    assert body["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hello world"},
    ]
    assert (body["temperature"], body["top_p"], body["max_tokens"], body["stop"], body["seed"]) == (
        0.7,
        0.9,
        12,
        ["\n"],
        0,
    )
    assert srv.auth == ["Bearer EMPTY"]  # local server, no key set: the dummy key


def test_prompt_goes_through_chat_unless_completions_mode(fault_server: Any) -> None:
    srv = fault_server()
    from_spec(f"stub@{srv.base_url}", **FAST).generate([Request(prompt="p1")])
    llm = from_spec(f"stub@{srv.base_url}", api="completions", **FAST)
    out = llm.generate([Request(prompt="p2"), Request.chat("c3")])
    assert [o.text for o in out] == ["echo: p2", "echo: c3"]
    # the last two requests run concurrently: their arrival order is not fixed
    assert srv.paths[0] == "/v1/chat/completions"
    assert sorted(srv.paths[1:]) == ["/v1/chat/completions", "/v1/completions"]
    (completion_body,) = [
        b for path, b in zip(srv.paths, srv.bodies, strict=True) if path == "/v1/completions"
    ]
    assert "seed" not in completion_body and completion_body["prompt"] == "p2"


def test_api_key_from_env_is_sent(fault_server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", MARKER)
    srv = fault_server()
    llm_for(srv).generate([Request.chat("x")])
    assert srv.auth == [f"Bearer {MARKER}"]


def test_concurrency_is_bounded_per_http_call(fault_server: Any) -> None:
    srv = fault_server(latency=0.05, honour_n=False)
    llm = llm_for(srv, max_concurrency=2)
    out = llm.generate([Request.chat(f"q{i}", n=2) for i in range(5)])
    assert len(out) == 5 and srv.request_count == 10
    assert srv.max_in_flight == 2  # bounded, and the bound is used


# --------------------------------------------------------------------------- n > 1


def test_native_n_is_one_call(fault_server: Any) -> None:
    srv = fault_server(honour_n=True)
    [out] = llm_for(srv).generate([Request.chat("hi", n=3, seed=5)])
    assert out.texts == ["echo: hi [seed=5]", "echo: hi [seed=5] #1", "echo: hi [seed=5] #2"]
    assert srv.request_count == 1 and out.usage.calls == 1


def test_n_is_emulated_when_server_ignores_it(fault_server: Any) -> None:
    srv = fault_server(honour_n=False)
    llm = llm_for(srv)
    [out] = llm.generate([Request.chat("hi", n=3, seed=5)])
    assert sorted(out.texts) == ["echo: hi [seed=5]", "echo: hi [seed=6]", "echo: hi [seed=7]"]
    assert srv.request_count == 3
    assert out.usage.calls == 3 and out.usage.prompt_tokens == 3 and out.usage.completion_tokens == 9
    # the server's habit is remembered: the next n=2 request goes straight to single calls
    [again] = llm.generate([Request.chat("yo", n=2)])
    assert len(again.texts) == 2 and srv.request_count == 5
    assert [b["n"] for b in srv.bodies[3:]] == [1, 1] and all("seed" not in b for b in srv.bodies[3:])


def test_emulated_sample_failure_fails_the_request(fault_server: Any) -> None:
    srv = fault_server(script=[Fault.OK, Fault.MALFORMED_JSON], honour_n=False)
    with pytest.raises(LLMResponseError):
        llm_for(srv, max_retries=0).generate([Request.chat("hi", n=3)])


# --------------------------------------------------------------------------- faults and retries

PERMANENT = [
    (Fault.RATE_LIMIT, LLMRateLimitError),
    (Fault.RATE_LIMIT_RETRY_AFTER, LLMRateLimitError),
    (Fault.SERVER_ERROR, LLMServerError),
    (Fault.UNAVAILABLE, LLMServerError),
    (Fault.RESET, LLMConnectionError),
    (Fault.TRUNCATED, LLMResponseError),
]


@pytest.mark.parametrize(("fault", "error"), PERMANENT, ids=[f.value for f, _ in PERMANENT])
def test_transient_faults_are_retried_a_bounded_number_of_times(
    fault_server: Any, fault: Fault, error: type[LLMError]
) -> None:
    srv = fault_server(default=fault)
    with pytest.raises(error) as info:
        llm_for(srv, max_retries=3).generate([Request.chat("x")])
    assert srv.request_count == 1 + 3
    assert "4 attempts" in str(info.value) and "\n" not in str(info.value)


def test_hung_server_is_a_timeout_error_within_bound(fault_server: Any) -> None:
    srv = fault_server(default=Fault.HANG, hang_seconds=5)
    with pytest.raises(LLMTimeoutError):
        llm_for(srv, timeout=0.3, max_retries=1).generate([Request.chat("x")])
    assert srv.request_count == 2


@pytest.mark.parametrize("fault", [Fault.MALFORMED_JSON, Fault.EMPTY_CHOICES])
def test_malformed_answers_are_response_errors_and_not_retried(fault_server: Any, fault: Fault) -> None:
    srv = fault_server(default=fault)
    with pytest.raises(LLMResponseError):
        llm_for(srv, max_retries=3).generate([Request.chat("x")])
    assert srv.request_count == 1


def test_client_errors_are_not_retried(fault_server: Any) -> None:
    srv = fault_server(script=[Fault.BAD_REQUEST, Fault.UNAUTHORIZED])
    llm = llm_for(srv, max_retries=3)
    with pytest.raises(LLMBadRequestError):
        llm.generate([Request.chat("x")])
    with pytest.raises(LLMAuthError):
        llm.generate([Request.chat("x")])
    assert srv.request_count == 2


def test_transient_failures_then_success(fault_server: Any) -> None:
    srv = fault_server(
        script=[Fault.SERVER_ERROR, Fault.RATE_LIMIT_RETRY_AFTER, Fault.RESET, Fault.UNAVAILABLE]
    )
    [out] = llm_for(srv, max_retries=4).generate([Request.chat("ok?")])
    assert out.text == "echo: ok?" and srv.request_count == 5


def test_connection_refused_is_a_connection_error() -> None:
    with FaultServer() as srv:
        url = srv.base_url
    with pytest.raises(LLMConnectionError):
        from_spec(f"stub@{url}", max_retries=1, **FAST).generate([Request.chat("x")])


def test_return_exceptions_keeps_the_rest_of_the_batch(fault_server: Any) -> None:
    def behaviour(index: int, body: dict[str, Any]) -> Fault:
        return Fault.SERVER_ERROR if "bad" in body["messages"][-1]["content"] else Fault.OK

    srv = fault_server(behaviour=behaviour)
    llm = llm_for(srv, max_retries=1)
    batch = [Request.chat("good 1"), Request.chat("bad 2"), Request.chat("good 3")]
    out = llm.generate(batch, return_exceptions=True)
    assert isinstance(out[0], Completion) and out[0].text == "echo: good 1"
    assert isinstance(out[1], LLMServerError)
    assert isinstance(out[2], Completion) and out[2].text == "echo: good 3"
    with pytest.raises(LLMServerError):
        llm.generate(batch)


def test_random_transient_failures_are_absorbed_by_retries(fault_server: Any) -> None:
    srv = fault_server(failure_rate=0.3, seed=1)
    # no hang in the mix, so a long timeout costs nothing; FAST's 0.5 s made a loaded machine time
    # out answers that were on their way, and the retry of an answered request broke the count
    out = llm_for(srv, max_retries=6, timeout=10.0).generate([Request.chat(f"q{i}") for i in range(20)])
    assert [o.text for o in out] == [f"echo: q{i}" for i in range(20)]
    failures = sum(v for k, v in srv.served.items() if k is not Fault.OK)
    assert failures > 0 and srv.request_count == 20 + failures


async def test_fault_server_random_mode_is_reproducible() -> None:
    async def served(seed: int) -> list[bool]:
        with FaultServer(failure_rate=0.5, seed=seed, failure_mix=[Fault.SERVER_ERROR]) as srv:
            llm = from_spec(f"stub@{srv.base_url}", max_retries=0, **FAST)
            out = [(await llm.agenerate([Request.chat("x")], return_exceptions=True))[0] for _ in range(12)]
            await llm.aclose()
        return [isinstance(o, Completion) for o in out]

    first, second = await served(3), await served(3)
    assert first == second and True in first and False in first


# --------------------------------------------------------------------------- retry policy parts


def test_retry_after_header_is_read_in_seconds_and_milliseconds() -> None:
    def exc(headers: dict[str, str]) -> SimpleNamespace:
        return SimpleNamespace(response=SimpleNamespace(headers=headers))

    assert retry_after_seconds(exc({"retry-after": "2"})) == 2.0
    assert retry_after_seconds(exc({"retry-after-ms": "250", "retry-after": "9"})) == 0.25
    assert retry_after_seconds(exc({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"})) is None
    assert retry_after_seconds(ValueError("no response")) is None


def test_backoff_honours_retry_after_capped_else_grows_with_jitter() -> None:
    import random

    backoff = Backoff(initial=1.0, maximum=8.0, retry_after_max=5.0, rng=random.Random(0))

    def state(attempt: int, headers: dict[str, str] | None = None) -> Any:
        error = SimpleNamespace(response=SimpleNamespace(headers=headers)) if headers else ValueError()
        return SimpleNamespace(attempt_number=attempt, outcome=SimpleNamespace(exception=lambda: error))

    assert backoff(state(1, {"retry-after": "3"})) == 3.0
    assert backoff(state(1, {"retry-after": "100"})) == 5.0
    waits = [[backoff(state(a)) for a in (1, 2, 3, 4, 5, 6)] for _ in range(20)]
    for w in waits:
        assert 0.5 <= w[0] <= 1.0 and 1.0 <= w[1] <= 2.0 and 4.0 <= w[4] <= 8.0 and 4.0 <= w[5] <= 8.0
    assert len({w[2] for w in waits}) > 1  # jitter


# --------------------------------------------------------------------------- secrets


SECRET_FAULTS = [Fault.UNAUTHORIZED, Fault.BAD_REQUEST, Fault.SERVER_ERROR, Fault.RESET, Fault.HANG]


@pytest.mark.parametrize("fault", SECRET_FAULTS, ids=[f.value for f in SECRET_FAULTS])
@pytest.mark.parametrize("where", ["env-key", "url-credentials"])
def test_secrets_never_reach_errors_or_logs(
    fault_server: Any,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    fault: Fault,
    where: str,
) -> None:
    srv = fault_server(default=fault, hang_seconds=2)
    url = srv.base_url
    if where == "env-key":
        monkeypatch.setenv("OPENAI_API_KEY", MARKER)
        sent, secret = f"Bearer {MARKER}", MARKER
    else:  # basic-auth proxy in front of a server: credentials in the URL
        url = url.replace("http://", "http://bob:pw-SECRET-99@")
        sent, secret = "Basic " + base64.b64encode(b"bob:pw-SECRET-99").decode(), "pw-SECRET-99"
    caplog.set_level(logging.DEBUG)  # every logger, the HTTP library's included
    llm = from_spec(f"stub@{url}", max_retries=1, **{**FAST, "timeout": 0.2})
    [err] = llm.generate([Request.chat("x")], return_exceptions=True)
    assert isinstance(err, LLMError)
    assert srv.auth[0] == sent  # the secret really was in play
    for text in (str(err), repr(err), llm.name, repr(llm), caplog.text):
        assert secret not in text and sent.split()[1] not in text
    if fault in (Fault.BAD_REQUEST, Fault.UNAUTHORIZED):
        assert "HTTP 4" in str(err)  # the server's echo of the secret was redacted or dropped, the rest kept
    if fault is Fault.BAD_REQUEST:
        assert "***" in str(err)


# --------------------------------------------------------------------------- event loops


async def test_async_use_reuses_one_client_per_loop_and_closes(fault_server: Any) -> None:
    srv = fault_server()
    llm = llm_for(srv)
    first = await llm.agenerate([Request.chat("a"), Request.chat("b")])
    client = llm.loop_state()["client"]
    second = await llm.agenerate([Request.chat("c")])
    assert llm.loop_state()["client"] is client
    assert [c.text for c in first + second] == ["echo: a", "echo: b", "echo: c"]
    await llm.aclose()
    await llm.aclose()  # twice is fine
    assert "client" not in llm.loop_state()
    assert (await llm.agenerate([Request.chat("d")]))[0].text == "echo: d"  # reopens on demand
    await llm.aclose()


def test_sync_calls_from_fresh_loops_work_repeatedly(fault_server: Any) -> None:
    srv = fault_server()
    llm = llm_for(srv)
    assert [llm.complete(f"t{i}") for i in range(3)] == ["echo: t0", "echo: t1", "echo: t2"]


def test_clients_of_a_loop_are_closed_when_it_ends_even_if_the_caller_closes_later(fault_server: Any) -> None:
    """A library entry point that runs its batch with ``run_sync`` and closes the backend after
    (``open_models``, ``bpo eval``'s ``run_eval``) closes on a new loop, which has no clients: the
    first loop's client must still be closed before that loop goes, or the openai client's
    ``__del__`` later schedules its close on another loop ("Event loop is closed" tracebacks)."""
    srv = fault_server()
    llm = llm_for(srv)
    seen: list[Any] = []

    async def batch() -> str:
        out = await llm.agenerate([Request.chat("a")])
        seen.append(llm.loop_state()["client"])
        return out[0].text

    assert run_sync(batch()) == "echo: a"
    llm.close()  # the caller's close, on another loop
    assert seen[0].is_closed()


async def test_aclose_leaves_no_task_pending(fault_server: Any) -> None:
    import asyncio

    srv = fault_server()
    llm = llm_for(srv)
    await llm.agenerate([Request.chat("a")])
    await llm.aclose()
    await asyncio.sleep(0)
    pending = [t for t in asyncio.all_tasks() if t.get_name() == "promptopt-close-clients" and not t.done()]
    assert pending == []


def test_env_sets_backend_defaults_and_explicit_options_win(monkeypatch: pytest.MonkeyPatch) -> None:
    from promptopt.llm.openai_compat import from_spec

    monkeypatch.setenv("PROMPTOPT_REQUEST_TIMEOUT", "2.5")
    monkeypatch.setenv("PROMPTOPT_MAX_RETRIES", "0")
    monkeypatch.setenv("PROMPTOPT_MAX_CONCURRENCY", "3")
    llm = from_spec("m@http://127.0.0.1:9/v1")
    assert (llm.timeout, llm.max_retries, llm.max_concurrency) == (2.5, 0, 3)
    assert from_spec("m@http://127.0.0.1:9/v1", timeout=7).timeout == 7


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("PROMPTOPT_REQUEST_TIMEOUT", "soon"),
        ("PROMPTOPT_REQUEST_TIMEOUT", "0"),
        ("PROMPTOPT_MAX_RETRIES", "-1"),
    ],
)
def test_bad_env_value_is_a_config_error(monkeypatch: pytest.MonkeyPatch, var: str, value: str) -> None:
    from promptopt.errors import ConfigError
    from promptopt.llm.openai_compat import from_spec

    monkeypatch.setenv(var, value)
    with pytest.raises(ConfigError, match=var):
        from_spec("m@http://127.0.0.1:9/v1")
