"""A real HTTP server on 127.0.0.1 that speaks a tiny OpenAI API and misbehaves on request.

Why a real server and not a mocked transport: retries, timeouts, connection resets and truncated
bodies are properties of sockets and of the HTTP client's handling of them; only a real server shows
what the client really does. Tests and the robustness benchmarks (issue 5) share this one.

Usage::

    with FaultServer(script=[Fault.SERVER_ERROR, Fault.OK]) as srv:
        llm = from_spec(f"stub@{srv.base_url}")
        ...
        assert srv.request_count == 2

Each POST to ``/v1/chat/completions`` or ``/v1/completions`` takes its behaviour from, in order:
``script`` (consumed one entry per request), the seeded random ``failure_rate`` / ``failure_mix``,
then ``default``. ``GET /v1/models`` always answers (a readiness probe). The OK answer is
deterministic: ``"echo: <last user text>"``, with `` [seed=S]`` when the request carried a seed and
`` #i`` for choice ``i > 0``; ``honour_n=False`` imitates llama.cpp, which returns one choice
whatever ``n`` says. Every wait (latency, hang) is bounded and ends early when the server stops.
"""

from __future__ import annotations

import enum
import json
import random
import socket
import struct
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Fault(str, enum.Enum):
    """What the server does with one request."""

    OK = "ok"
    RATE_LIMIT = "429"  # 429 without Retry-After
    RATE_LIMIT_RETRY_AFTER = "429-retry-after"  # 429 with Retry-After: <retry_after> seconds
    SERVER_ERROR = "500"
    UNAVAILABLE = "503"
    RESET = "reset"  # read the request, then reset the TCP connection (RST, no response)
    HANG = "hang"  # read the request, then answer nothing for hang_seconds
    MALFORMED_JSON = "malformed-json"  # 200 with a body that is not JSON
    TRUNCATED = "truncated"  # 200, Content-Length says N, half the bytes come, then the socket closes
    EMPTY_CHOICES = "empty-choices"  # 200, valid JSON, "choices": []
    UNAUTHORIZED = "401"  # echoes the bearer token in its message, as some real servers do
    BAD_REQUEST = "400"  # likewise echoes the token: tests check that clients redact it
    BAD_REQUEST_ADDRESS = "400-address"  # names its own and internal addresses, as vLLM's errors can


#: The transient failures a flaky production endpoint shows; the default random mix.
TRANSIENT_FAULTS: tuple[Fault, ...] = (
    Fault.RATE_LIMIT_RETRY_AFTER,
    Fault.SERVER_ERROR,
    Fault.UNAVAILABLE,
    Fault.RESET,
)

BehaviourFn = Callable[[int, dict[str, Any]], "Fault | str"]


class FaultServer:
    """An OpenAI-compatible stub with scripted and random faults, in a background thread.

    ``request_count`` counts generation POSTs received (every attempt, retries included);
    ``served`` counts them per Fault; ``bodies`` keeps the parsed JSON bodies in arrival order,
    ``paths`` the request paths, ``auth`` the Authorization headers and ``headers`` every request
    header (names in lower case); ``max_in_flight`` is the
    largest number of generation requests the server was handling at once.
    """

    def __init__(
        self,
        *,
        script: Sequence[Fault | str] = (),
        default: Fault | str = Fault.OK,
        behaviour: BehaviourFn | None = None,
        failure_rate: float = 0.0,
        failure_mix: Sequence[Fault | str] = TRANSIENT_FAULTS,
        seed: int = 0,
        latency: float = 0.0,
        retry_after: float = 0.05,
        hang_seconds: float = 5.0,
        honour_n: bool = True,
        idle_timeout: float = 10.0,
    ) -> None:
        if not 0.0 <= failure_rate <= 1.0:
            raise ValueError(f"failure_rate must be in [0, 1], got {failure_rate}")
        if failure_rate > 0 and not failure_mix:
            raise ValueError("failure_mix must not be empty when failure_rate > 0")
        self._script = [Fault(f) for f in script]
        self._default = Fault(default)
        self._behaviour = behaviour
        self._failure_rate = failure_rate
        self._failure_mix = [Fault(f) for f in failure_mix]
        self._rng = random.Random(seed)
        self.latency = latency
        self.retry_after = retry_after
        self.hang_seconds = hang_seconds
        self.honour_n = honour_n
        self.idle_timeout = idle_timeout
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._connections: set[socket.socket] = set()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.request_count = 0
        self.served: Counter[Fault] = Counter()
        self.bodies: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self.auth: list[str] = []
        self.headers: list[dict[str, str]] = []
        self.in_flight = 0
        self.max_in_flight = 0

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> FaultServer:
        if self._httpd is not None:
            raise RuntimeError("FaultServer already started")
        handler = _make_handler(self)
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        httpd.daemon_threads = True
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="fault-server", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, wake every waiting handler and close every open connection."""
        self._stop.set()
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        with self._lock:
            conns = list(self._connections)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FaultServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ facts
    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("FaultServer is not running")
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        """The OpenAI base URL, ``http://127.0.0.1:PORT/v1``."""
        return f"http://127.0.0.1:{self.port}/v1"

    # ------------------------------------------------------------------ decisions
    def _next(
        self, body: dict[str, Any], path: str, auth: str, headers: dict[str, str] | None = None
    ) -> tuple[int, Fault]:
        """Count the request and pick its behaviour (under the lock: arrival order decides)."""
        with self._lock:
            index = self.request_count
            self.request_count += 1
            self.bodies.append(body)
            self.paths.append(path)
            self.auth.append(auth)
            self.headers.append(dict(headers or {}))
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            if self._script:
                fault = self._script.pop(0)
            elif self._behaviour is not None:
                fault = Fault(self._behaviour(index, body))
            elif self._failure_rate > 0 and self._rng.random() < self._failure_rate:
                fault = self._rng.choice(self._failure_mix)
            else:
                fault = self._default
            self.served[fault] += 1
            return index, fault

    def _done(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def _wait(self, seconds: float) -> None:
        """Sleep that ends early when the server stops (so no handler outlives it by much)."""
        if seconds > 0:
            self._stop.wait(seconds)

    def _track(self, conn: socket.socket, add: bool) -> None:
        with self._lock:
            (self._connections.add if add else self._connections.discard)(conn)


# ---------------------------------------------------------------------- answers


def _words(text: str) -> int:
    return len(text.split())


def _last_user_text(body: dict[str, Any]) -> str:
    if "prompt" in body:
        prompt = body["prompt"]
        return prompt if isinstance(prompt, str) else json.dumps(prompt)
    for msg in reversed(body.get("messages") or []):
        if isinstance(msg, dict) and msg.get("role") == "user":
            return str(msg.get("content", ""))
    return ""


def ok_payload(body: dict[str, Any], *, chat: bool, honour_n: bool) -> dict[str, Any]:
    """The deterministic success answer for a request body (see module docstring)."""
    text = f"echo: {_last_user_text(body)}"
    if body.get("seed") is not None:
        text += f" [seed={body['seed']}]"
    n = int(body.get("n") or 1) if honour_n else 1
    choices = []
    for i in range(n):
        t = text if i == 0 else f"{text} #{i}"
        if chat:
            choices.append(
                {"index": i, "message": {"role": "assistant", "content": t}, "finish_reason": "stop"}
            )
        else:
            choices.append({"index": i, "text": t, "finish_reason": "stop", "logprobs": None})
    prompt_tokens = _words(_last_user_text(body))
    return {
        "id": "stub-1",
        "object": "chat.completion" if chat else "text_completion",
        "created": 0,
        "model": str(body.get("model", "stub")),
        "choices": choices,
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": sum(_words(c.get("text") or c["message"]["content"]) for c in choices),
            "total_tokens": 0,
        },
    }


def _make_handler(server: FaultServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, like real servers
        timeout = server.idle_timeout  # bounds the wait for the next request on a kept-alive socket

        def setup(self) -> None:
            super().setup()
            # headers and body go out in two writes; without NODELAY, Nagle + delayed ACK add ~40 ms
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            server._track(self.connection, True)

        def finish(self) -> None:
            try:
                super().finish()
            except OSError:
                pass
            server._track(self.connection, False)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet by design
            return

        # -- helpers
        def _send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(payload).encode()
            self._send_bytes(status, data, headers)

        def _send_bytes(self, status: int, data: bytes, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def _error(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
            self._send_json(status, {"error": {"message": message, "type": "stub", "code": status}}, headers)

        def _reset(self) -> None:
            # SO_LINGER 0 turns close() into a TCP RST: the client sees "connection reset".
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            self.close_connection = True

        # -- routes
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            if self.path.rstrip("/").endswith("/models"):
                self._send_json(200, {"object": "list", "data": [{"id": "stub", "object": "model"}]})
            else:
                self._error(404, f"no route {self.path}")

        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            path = self.path.rstrip("/")
            if not (path.endswith("/chat/completions") or path.endswith("/completions")):
                self._error(404, f"no route {self.path}")
                return
            try:
                body = json.loads(raw or b"{}")
            except json.JSONDecodeError:
                self._error(400, "request body is not JSON")
                return
            auth = self.headers.get("Authorization") or ""
            seen = {k.lower(): v for k, v in self.headers.items()}
            _, fault = server._next(body, path, auth, seen)
            try:
                server._wait(server.latency)
                self._act(fault, body, chat=path.endswith("/chat/completions"), auth=auth)
            finally:
                server._done()

        def _act(self, fault: Fault, body: dict[str, Any], *, chat: bool, auth: str) -> None:
            if fault is Fault.OK:
                self._send_json(200, ok_payload(body, chat=chat, honour_n=server.honour_n))
            elif fault is Fault.RATE_LIMIT:
                self._error(429, "rate limited")
            elif fault is Fault.RATE_LIMIT_RETRY_AFTER:
                self._error(429, "rate limited", {"Retry-After": f"{server.retry_after:g}"})
            elif fault is Fault.SERVER_ERROR:
                self._error(500, "internal error")
            elif fault is Fault.UNAVAILABLE:
                self._error(503, "overloaded")
            elif fault is Fault.RESET:
                self._reset()
            elif fault is Fault.HANG:
                server._wait(server.hang_seconds)
                self._reset()
            elif fault is Fault.MALFORMED_JSON:
                self._send_bytes(200, b'{"id": "stub-1", "choices": [ this is not json')
            elif fault is Fault.TRUNCATED:
                data = json.dumps(ok_payload(body, chat=chat, honour_n=server.honour_n)).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data[: len(data) // 2])
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True
            elif fault is Fault.EMPTY_CHOICES:
                payload = ok_payload(body, chat=chat, honour_n=server.honour_n)
                payload["choices"] = []
                self._send_json(200, payload)
            elif fault is Fault.UNAUTHORIZED:
                self._error(401, f"Incorrect API key provided: {auth.removeprefix('Bearer ')}")
            elif fault is Fault.BAD_REQUEST:
                self._error(400, f"bad request (sent with {auth})")
            elif fault is Fault.BAD_REQUEST_ADDRESS:
                here = f"http://127.0.0.1:{server.port}/v1"
                self._error(
                    400, f"model not loaded at {here} (worker 10.1.2.3:8001, cache gpu-7.internal:9000)"
                )
            else:  # pragma: no cover - the enum is closed
                raise AssertionError(fault)

    return Handler
