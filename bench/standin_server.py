"""An OpenAI-compatible stand-in for a remote API: asyncio, many connections, fixed latency.

Why not ``tests/servers/fault_server.py``: that one is a thread-per-connection server built to
misbehave on request, and it answers ``"echo: ..."``. The throughput benchmark needs the shape of
a remote API instead: every request waits a fixed latency without holding a thread (so 16 or 200
open connections cost nothing), and a GSM8K-style question gets a number for an answer. It runs in
its own process so that its CPU time does not compete with the client under test for the GIL.

Run alone: ``python bench/standin_server.py --latency 0.1`` prints ``PORT <n>`` and serves
``POST /v1/chat/completions``, ``POST /v1/completions``, ``GET /v1/models`` and ``GET /stats``
(``{"requests": N, "max_in_flight": M}``) on 127.0.0.1 until ``--max-seconds`` pass or nobody
has asked anything for ``--idle-seconds`` (so a forgotten server stops by itself).

From a script: ``with StandinServer(latency=0.1) as srv: srv.base_url, srv.stats()``.

Profiles (``--profile``, for ``adaptive_concurrency.py``):

- ``fixed`` (default): every completion waits ``--latency``: a remote API far from its limits.
- ``batching``: a GPU server that batches (vLLM): up to ``--max-batch`` requests run together and
  each takes ``--latency + --alpha x (requests running)``, so throughput grows with load and
  saturates; requests beyond the batch wait in a FIFO queue, as vLLM's scheduler holds requests
  past ``max_num_seqs``. ``--max-batch 0`` means no batch limit (latency grows without bound).
- ``ratelimit``: a token bucket of ``--rate`` requests per second and ``--burst`` tokens in front
  of a fixed-latency server; a request that finds no token is answered at once with HTTP 429 and
  ``Retry-After: --retry-after`` seconds, as hosted APIs do past their quota.

``/stats`` also reports ``rejected`` (the 429s).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import subprocess
import sys
import time
import urllib.request
from typing import Any

_MAX_BODY = 8 * 1024 * 1024
_MAX_HEADER = 64 * 1024


# --------------------------------------------------------------------------- answers


def answer_text(body: dict[str, Any]) -> str:
    """A deterministic answer ending in a number (what a scorer's answer extraction looks for).

    The number is a function of the request only, so repeated requests get repeated answers,
    like a temperature-0 model; it is right by chance only, which a throughput test does not mind.
    """
    blob = json.dumps([body.get("messages"), body.get("prompt"), body.get("seed")], sort_keys=True)
    number = int(hashlib.sha256(blob.encode()).hexdigest()[:8], 16) % 200
    return f"Let me work it out step by step. The answer is {number}."


def completion_payload(body: dict[str, Any], *, chat: bool) -> dict[str, Any]:
    text = answer_text(body)
    n = max(1, int(body.get("n") or 1))
    if chat:
        choices = [
            {"index": i, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
            for i in range(n)
        ]
    else:
        choices = [{"index": i, "text": text, "finish_reason": "stop", "logprobs": None} for i in range(n)]
    prompt_words = len(json.dumps(body.get("messages") or body.get("prompt") or "").split())
    completion_words = len(text.split()) * n
    return {
        "id": "standin-1",
        "object": "chat.completion" if chat else "text_completion",
        "created": int(time.time()),
        "model": str(body.get("model", "standin")),
        "choices": choices,
        "usage": {
            "prompt_tokens": prompt_words,
            "completion_tokens": completion_words,
            "total_tokens": prompt_words + completion_words,
        },
    }


# --------------------------------------------------------------------------- server


PROFILES = ("fixed", "batching", "ratelimit")


class _State:
    def __init__(
        self,
        latency: float,
        *,
        profile: str = "fixed",
        alpha: float = 0.004,
        max_batch: int = 32,
        rate: float = 100.0,
        burst: float = 10.0,
        retry_after: float = 1.0,
    ) -> None:
        if profile not in PROFILES:
            raise ValueError(f"unknown profile {profile!r}; known: {', '.join(PROFILES)}")
        self.latency = latency
        self.profile = profile
        self.alpha = alpha
        self.rate = rate
        self.burst = burst
        self.retry_after = retry_after
        self.requests = 0
        self.rejected = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.running = 0  # in the batch (batching profile)
        self.batch = asyncio.Semaphore(max_batch) if profile == "batching" and max_batch > 0 else None
        self.tokens = burst
        self.refilled = time.monotonic()
        self.last_activity = time.monotonic()

    def take_token(self) -> bool:
        """The rate limiter: refill the bucket for the time passed, then take one token if any."""
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.refilled) * self.rate)
        self.refilled = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False

    async def work(self) -> None:
        """The time one completion takes under this profile."""
        if self.profile != "batching":
            await asyncio.sleep(self.latency)
            return
        if self.batch is not None:
            await self.batch.acquire()
        self.running += 1
        try:
            await asyncio.sleep(self.latency + self.alpha * self.running)
        finally:
            self.running -= 1
            if self.batch is not None:
                self.batch.release()


def _response(status: int, payload: Any, extra_headers: str = "") -> bytes:
    data = json.dumps(payload).encode()
    reason = {
        200: "OK",
        400: "Bad Request",
        404: "Not Found",
        413: "Payload Too Large",
        429: "Too Many Requests",
    }.get(status, "OK")
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(data)}\r\n{extra_headers}Connection: keep-alive\r\n\r\n"
    )
    return head.encode() + data


async def _handle(state: _State, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """One keep-alive connection: requests in order until the client closes it."""
    try:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                return
            state.last_activity = time.monotonic()
            lines = head.decode("latin-1").split("\r\n")
            parts = lines[0].split(" ")
            if len(parts) < 2:
                return
            method, path = parts[0].upper(), parts[1].split("?", 1)[0].rstrip("/")
            headers = {}
            for line in lines[1:]:
                key, sep, value = line.partition(":")
                if sep:
                    headers[key.strip().lower()] = value.strip()
            length = int(headers.get("content-length") or 0)
            if length > _MAX_BODY:
                writer.write(_response(413, {"error": {"message": "body too large"}}))
                await writer.drain()
                return
            raw = await reader.readexactly(length) if length else b""
            writer.write(await _route(state, method, path, raw))
            await writer.drain()
            if headers.get("connection", "").lower() == "close":
                return
    except (ConnectionError, asyncio.IncompleteReadError):
        return
    finally:
        writer.close()


async def _route(state: _State, method: str, path: str, raw: bytes) -> bytes:
    if method == "GET" and path.endswith("/models"):
        return _response(200, {"object": "list", "data": [{"id": "standin", "object": "model"}]})
    if method == "GET" and path.endswith("/stats"):
        return _response(
            200,
            {"requests": state.requests, "max_in_flight": state.max_in_flight, "rejected": state.rejected},
        )
    if method == "POST" and (path.endswith("/chat/completions") or path.endswith("/completions")):
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError:
            return _response(400, {"error": {"message": "body is not JSON"}})
        state.requests += 1
        if state.profile == "ratelimit" and not state.take_token():
            state.rejected += 1
            state.last_activity = time.monotonic()
            message = {"error": {"message": "rate limit reached", "type": "rate_limit", "code": 429}}
            return _response(429, message, f"Retry-After: {state.retry_after:g}\r\n")
        state.in_flight += 1
        state.max_in_flight = max(state.max_in_flight, state.in_flight)
        try:
            await state.work()
        finally:
            state.in_flight -= 1
            state.last_activity = time.monotonic()
        return _response(200, completion_payload(body, chat=path.endswith("/chat/completions")))
    return _response(404, {"error": {"message": f"no route {method} {path}"}})


async def serve(
    *,
    latency: float,
    port: int = 0,
    max_seconds: float = 600.0,
    idle_seconds: float = 120.0,
    **profile: Any,
) -> None:
    """Serve on 127.0.0.1 until ``max_seconds`` pass or no request came for ``idle_seconds``.
    ``profile``: ``profile`` name and its knobs (see the module docstring)."""
    state = _State(latency, **profile)
    server = await asyncio.start_server(
        lambda r, w: _handle(state, r, w), "127.0.0.1", port, backlog=1024, limit=_MAX_HEADER
    )
    bound = server.sockets[0].getsockname()[1]
    print(f"PORT {bound}", flush=True)
    started = time.monotonic()
    async with server:
        while True:
            await asyncio.sleep(0.2)
            now = time.monotonic()
            if now - started > max_seconds or now - state.last_activity > idle_seconds:
                break


# --------------------------------------------------------------------------- parent side

_KNOBS = ("alpha", "max_batch", "rate", "burst", "retry_after")


class StandinServer:
    """The stand-in in a child process; the context manager starts it and stops it (by its pid)."""

    def __init__(
        self,
        *,
        latency: float = 0.1,
        max_seconds: float = 600.0,
        idle_seconds: float = 120.0,
        profile: str = "fixed",
        **knobs: float,
    ) -> None:
        """``knobs``: the profile's ``alpha``, ``max_batch``, ``rate``, ``burst``, ``retry_after``."""
        unknown = set(knobs) - set(_KNOBS)
        if profile not in PROFILES or unknown:
            raise ValueError(f"bad stand-in profile {profile!r} or knobs {sorted(unknown)}")
        self.latency = latency
        self.max_seconds = max_seconds
        self.idle_seconds = idle_seconds
        self.profile = profile
        self.knobs = knobs
        self._proc: subprocess.Popen[str] | None = None
        self.port: int | None = None

    def start(self) -> StandinServer:
        cmd = [
            sys.executable,
            __file__,
            "--latency",
            str(self.latency),
            "--max-seconds",
            str(self.max_seconds),
            "--idle-seconds",
            str(self.idle_seconds),
            "--profile",
            self.profile,
        ]
        for knob, value in self.knobs.items():
            cmd += [f"--{knob.replace('_', '-')}", str(value)]
        self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()  # the child prints its port first, or dies
        if not line.startswith("PORT "):
            self.stop()
            raise RuntimeError(f"stand-in server did not start (said {line!r})")
        self.port = int(line.split()[1])
        return self

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def stats(self) -> dict[str, int]:
        with urllib.request.urlopen(f"{self.base_url}/stats", timeout=10) as resp:  # noqa: S310 - localhost
            return json.loads(resp.read())

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    def __enter__(self) -> StandinServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--latency", type=float, default=0.1, help="seconds each completion waits (0.1)")
    ap.add_argument("--port", type=int, default=0, help="0 picks a free port (printed)")
    ap.add_argument("--max-seconds", type=float, default=600.0, help="stop after this long (600)")
    ap.add_argument("--idle-seconds", type=float, default=120.0, help="stop when idle this long (120)")
    ap.add_argument("--profile", choices=PROFILES, default="fixed", help="server behaviour (fixed)")
    ap.add_argument("--alpha", type=float, default=0.004, help="batching: s added per running request")
    ap.add_argument("--max-batch", type=int, default=32, help="batching: requests run together (32; 0 = any)")
    ap.add_argument("--rate", type=float, default=100.0, help="ratelimit: requests per second (100)")
    ap.add_argument("--burst", type=float, default=10.0, help="ratelimit: bucket size (10)")
    ap.add_argument("--retry-after", type=float, default=1.0, help="ratelimit: Retry-After seconds (1)")
    args = ap.parse_args()
    try:
        asyncio.run(
            serve(
                latency=args.latency,
                port=args.port,
                max_seconds=args.max_seconds,
                idle_seconds=args.idle_seconds,
                profile=args.profile,
                **{k: getattr(args, k) for k in _KNOBS},
            )
        )
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
