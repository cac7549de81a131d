"""`promptopt serve` under abuse (issue 23, items 5-7), over real HTTP against uvicorn on 127.0.0.1:
a client that leaves cancels its upstream call and frees its slot, bodies are bounded and parsed
safely, every error is OpenAI-shaped, a 429 says when to retry, unknown models are refused and no
upstream address reaches a client."""

from __future__ import annotations

import asyncio
import http.client
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest

openai = pytest.importorskip("openai")
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from promptopt.llm.base import (  # noqa: E402
    BaseLLM,
    BudgetExceededError,
    Completion,
    LLMRateLimitError,
    Request,
)
from promptopt.llm.fake import FakeLLM  # noqa: E402
from promptopt.llm.openai_compat import from_spec  # noqa: E402
from promptopt.serve.app import ServeState, Upstream, create_app  # noqa: E402
from promptopt.serve.errors import DEFAULT_RETRY_AFTER, scrub_addresses  # noqa: E402
from promptopt.serve.runner import BackgroundServer  # noqa: E402
from tests.servers.fault_server import Fault, FaultServer  # noqa: E402

CHAT = {"model": "promptopt", "messages": [{"role": "user", "content": "hi"}]}


class Stalling(BaseLLM):
    """An LLM whose calls never finish on their own: ``started`` is set when a call begins,
    ``cancelled`` when one is cancelled (what a client's disconnect must cause)."""

    name = "stalling"

    def __init__(self) -> None:
        super().__init__()
        self.started = threading.Event()
        self.cancelled = threading.Event()

    async def agenerate(self, requests: Sequence[Request], *, return_exceptions: bool = False) -> list[Any]:
        self.started.set()
        try:
            await asyncio.get_running_loop().create_future()  # forever
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        return []  # pragma: no cover

    async def _complete(self, request: Request) -> Completion:  # pragma: no cover - agenerate above
        raise NotImplementedError


def start(llm: Any, **state: Any) -> BackgroundServer:
    return BackgroundServer(create_app(ServeState(Upstream(lambda key: llm), **state))).start()


@pytest.fixture
def fake() -> FakeLLM:
    return FakeLLM(default="fine")


@pytest.fixture
def srv(fake: FakeLLM) -> Iterator[BackgroundServer]:
    server = start(fake, max_body_bytes=2000)
    yield server
    server.stop()


def call(
    srv: BackgroundServer, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], Any]:
    """(status, headers, JSON body) of one plain HTTP request."""
    conn = http.client.HTTPConnection(srv.host, srv.port, timeout=10)
    try:
        data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
        conn.request(method, path, body=data, headers={"Content-Type": "application/json", **(headers or {})})
        resp = conn.getresponse()
        raw = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, json.loads(raw) if raw else None
    finally:
        conn.close()


def post_and_leave_open(srv: BackgroundServer, body: dict[str, Any]) -> socket.socket:
    """A client that sends a whole request on a raw socket; closing the socket is its disconnect."""
    sock = socket.create_connection((srv.host, srv.port), timeout=10)
    data = json.dumps(body).encode()
    head = f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
    sock.sendall(head.encode() + data)
    return sock


def wait_until(condition: Callable[[], bool], seconds: float = 10.0) -> bool:
    """Whether ``condition`` became true within ``seconds`` (a bound for correctness, not speed)."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def assert_openai_error(body: Any, kind: str = "invalid_request_error") -> dict[str, Any]:
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}, body
    assert body["error"]["type"] == kind and body["error"]["message"]
    return body["error"]


# --------------------------------------------------------------------------- item 5: disconnects


@pytest.mark.parametrize("stream", [False, True])
def test_a_client_that_disconnects_cancels_its_upstream_call(
    stream: bool, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="promptopt.serve")
    llm = Stalling()
    with start(llm) as srv:
        sock = post_and_leave_open(srv, {**CHAT, "stream": stream})
        assert llm.started.wait(10)
        sock.close()
        assert llm.cancelled.wait(10), "the upstream call outlived its client"
        status, _, health = call(srv, "GET", "/health")
    assert health["cancelled"] == 1 and health["errors"] == 0
    [line] = [r.getMessage() for r in caplog.records if "/v1/chat/completions" in r.getMessage()]
    assert " 499 " in line and "client disconnected" in line


def test_abandoned_requests_free_their_upstream_slots_at_once(fault_server: Any) -> None:
    """Two slots, six clients that leave: the four queued requests never start, the two upstream
    attempts are dropped (no retry), and the next client is served at once although the upstream
    still sits on the first two (it would hold them for 60 s)."""
    up: FaultServer = fault_server(
        behaviour=lambda i, body: Fault.HANG if "abandon" in json.dumps(body) else Fault.OK, hang_seconds=60
    )
    llm = from_spec(f"stub@{up.base_url}", max_concurrency=2, max_retries=3, timeout=60)
    state = ServeState(Upstream(lambda key: llm))
    with BackgroundServer(create_app(state)) as srv:
        socks = [
            post_and_leave_open(srv, {**CHAT, "messages": [{"role": "user", "content": f"abandon {i}"}]})
            for i in range(6)
        ]
        assert wait_until(lambda: up.request_count == 2)  # the slots are full
        holding = {int(b["messages"][-1]["content"].split()[-1]) for b in up.bodies}
        for i in sorted(set(range(6)) - holding):  # the queued ones leave first, ...
            socks[i].close()
        assert wait_until(lambda: state.cancelled == 4)
        for i in holding:  # ... then those the upstream is working on
            socks[i].close()
        assert wait_until(lambda: state.cancelled == 6)
        client = openai.OpenAI(base_url=srv.base_url, api_key="x", max_retries=0, timeout=20)
        out = client.chat.completions.create(
            model="promptopt", messages=[{"role": "user", "content": "next"}]
        )
    assert out.choices[0].message.content == "echo: next"
    assert up.request_count == 3  # nothing of the abandoned requests ran after they left


# --------------------------------------------------------------------------- item 6: bodies


def test_a_body_over_the_limit_is_413_before_it_is_read(srv: BackgroundServer, fake: FakeLLM) -> None:
    big = {**CHAT, "messages": [{"role": "user", "content": "x" * 5000}]}
    status, headers, body = call(srv, "POST", "/v1/chat/completions", big)
    assert status == 413 and assert_openai_error(body)["code"] == "request_too_large"
    # a length of 1 GB is refused from the header alone: the server never waits for the body
    conn = http.client.HTTPConnection(srv.host, srv.port, timeout=10)
    conn.putrequest("POST", "/v1/chat/completions")
    conn.putheader("Content-Length", str(10**9))
    conn.endheaders(b"{")
    resp = conn.getresponse()
    assert resp.status == 413 and json.loads(resp.read())["error"]["code"] == "request_too_large"
    conn.close()
    assert fake.calls == []


def test_a_chunked_body_is_counted_while_it_is_read(srv: BackgroundServer, fake: FakeLLM) -> None:
    conn = http.client.HTTPConnection(srv.host, srv.port, timeout=10)
    chunks = iter([b'{"messages": [{"role": "user", "content": "', *([b"y" * 500] * 10), b'"}]}'])
    conn.request("POST", "/v1/chat/completions", body=chunks, encode_chunked=True,
                 headers={"Content-Type": "application/json", "Transfer-Encoding": "chunked"})  # fmt: skip
    resp = conn.getresponse()
    assert resp.status == 413 and json.loads(resp.read())["error"]["code"] == "request_too_large"
    conn.close()
    small = iter([b'{"messages": [{"role": "user", ', b'"content": "ok"}]}'])
    conn = http.client.HTTPConnection(srv.host, srv.port, timeout=10)
    conn.request("POST", "/v1/chat/completions", body=small, encode_chunked=True)
    assert conn.getresponse().status == 200  # under the limit, chunked is fine
    conn.close()
    assert len(fake.calls) == 1


def test_the_default_limit_is_a_few_megabytes() -> None:
    with start(FakeLLM(default="x")) as srv:
        status, _, body = call(srv, "POST", "/v1/completions", b"{", {"Content-Length": str(9 * 2**20)})
    assert status == 413 and "8388608 bytes" in body["error"]["message"]


def test_deeply_nested_json_is_a_400_logged_as_400(
    srv: BackgroundServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="promptopt.serve")
    nested = b'{"messages": ' + b"[" * 900 + b"]" * 900 + b"}"  # under the 2000-byte limit
    deeper = b"[" * 100_000 + b"]" * 100_000
    with start(FakeLLM(default="x")) as big:
        for server, body in ((srv, nested), (big, deeper)):
            status, _, answer = call(server, "POST", "/v1/chat/completions", body)
            assert status == 400, answer
            assert_openai_error(answer)
    lines = [r.getMessage() for r in caplog.records if "/v1/chat/completions" in r.getMessage()]
    assert len(lines) == 2 and all(" 400 " in line for line in lines)


# --------------------------------------------------------------------------- item 7: errors


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/v1/nope", 404),
        ("POST", "/v1/embeddings", 404),
        ("GET", "/v1/chat/completions", 405),
        ("POST", "/v1/models", 405),
    ],
)
def test_unknown_paths_and_wrong_methods_are_openai_errors(
    srv: BackgroundServer, method: str, path: str, status: int
) -> None:
    got, headers, body = call(srv, method, path, CHAT if method == "POST" else None)
    assert got == status
    error = assert_openai_error(body)
    assert path in error["message"]
    if status == 405:
        assert headers["allow"] in ("GET", "POST") and error["code"] == "method_not_allowed"


def test_an_unknown_model_is_refused_and_the_served_name_or_none_is_answered(srv: BackgroundServer) -> None:
    client = openai.OpenAI(base_url=srv.base_url, api_key="x", max_retries=0, timeout=10)
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="gpt-nope", messages=[{"role": "user", "content": "q"}])
    assert info.value.code == "model_not_found" and "gpt-nope" in info.value.message
    served = [m.id for m in client.models.list().data]
    assert client.chat.completions.create(
        model=served[0], messages=[{"role": "user", "content": "q"}]
    ).choices
    status, _, body = call(srv, "POST", "/v1/completions", {"prompt": "q"})  # no model: the served one
    assert status == 200 and body["model"] == "promptopt"


def test_a_bug_is_an_openai_shaped_500_logged_as_500(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="promptopt.serve")
    with start(FakeLLM(default=RuntimeError("a bug"))) as srv:
        status, _, body = call(srv, "POST", "/v1/chat/completions", CHAT)
    assert status == 500 and assert_openai_error(body, "server_error")["message"] == "internal server error"
    assert any(" 500 " in r.getMessage() for r in caplog.records if r.name == "promptopt.serve")


def test_429_says_when_to_retry(fault_server: Any) -> None:
    up: FaultServer = fault_server(default=Fault.RATE_LIMIT_RETRY_AFTER, retry_after=7)
    with start(from_spec(f"stub@{up.base_url}", max_retries=0)) as srv:
        status, headers, body = call(srv, "POST", "/v1/chat/completions", CHAT)
    assert status == 429 and headers["retry-after"] == "7" and headers["retry-after-ms"] == "7000"
    assert assert_openai_error(body, "rate_limit_error")["code"] == "rate_limit_exceeded"
    with start(FakeLLM(default=LLMRateLimitError("up: rate limited"))) as srv:
        status, headers, _ = call(srv, "POST", "/v1/chat/completions", CHAT)
    assert status == 429 and headers["retry-after"] == str(DEFAULT_RETRY_AFTER)
    with start(FakeLLM(default=BudgetExceededError("budget spent"))) as srv:
        status, headers, body = call(srv, "POST", "/v1/chat/completions", CHAT)
    assert status == 429 and "retry-after" not in headers and headers["x-should-retry"] == "false"
    assert body["error"]["code"] == "insufficient_quota"


def test_an_upstream_message_naming_addresses_reaches_the_client_without_them(fault_server: Any) -> None:
    up: FaultServer = fault_server(default=Fault.BAD_REQUEST_ADDRESS)
    with start(from_spec(f"stub@{up.base_url}", max_retries=0)) as srv:
        status, _, body = call(srv, "POST", "/v1/chat/completions", CHAT)
    message = assert_openai_error(body)["message"]
    assert status == 400 and "model not loaded at <address>" in message
    for leak in ("127.0.0.1", str(up.port), "10.1.2.3", "8001", "gpu-7.internal", "9000", "http"):
        assert leak not in message, message


@pytest.mark.parametrize(
    ("text", "scrubbed"),
    [
        ("at http://10.0.0.7:9000/v1/chat, retry", "at <address>, retry"),
        ("see https://user:pw@api.internal/v1?key=1 now", "see <address> now"),
        ("worker [fe80::1]:8001 and 192.168.1.20 down", "worker <address> and <address> down"),
        ("host gpu-7.internal:9000 or localhost:8000", "host <address> or <address>"),
        (
            "max_tokens:4096 is over 2048 at 10:30; use gpt-3.5",
            "max_tokens:4096 is over 2048 at 10:30; use gpt-3.5",
        ),
    ],
)
def test_scrub_addresses(text: str, scrubbed: str) -> None:
    assert scrub_addresses(text) == scrubbed
