"""Running the app under uvicorn: in the foreground (the CLI) or in a background thread.

Why the socket is bound here and handed to uvicorn: uvicorn reports a busy port by logging and
calling ``sys.exit(1)``; binding first turns that into one ``ConfigError`` line, and lets tests
and benchmarks ask for port 0 and learn the port the system picked.

Shutdown: uvicorn's own handlers catch SIGTERM and SIGINT in the foreground; it stops accepting,
lets requests in flight finish (at most ``graceful_seconds``), then ends the app's lifespan, which
closes the upstream clients. A background server stops the same way when :meth:`stop` is called.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

from promptopt.errors import ConfigError
from promptopt.extras import require


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0: any free port); ConfigError if it cannot."""
    if not 0 <= port <= 65535:
        raise ConfigError(f"--port must be between 0 and 65535, got {port}")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    family, kind, proto, _, address = infos[0]
    # proto IPPROTO_TCP (from getaddrinfo), not 0: asyncio sets TCP_NODELAY only on sockets that
    # say they are TCP, and without it every response waits ~40 ms (Nagle + delayed ACK)
    sock = socket.socket(family, kind, proto or socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock


def _server(app: Any, *, graceful_seconds: float) -> Any:
    uvicorn = require("uvicorn", "serve", what="promptopt serve")
    config = uvicorn.Config(
        app,
        log_config=None,  # leave the process's logging alone; the app logs one line per request
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=graceful_seconds,
        timeout_keep_alive=30,
    )
    return uvicorn.Server(config)


@contextlib.contextmanager
def _absorbed_stop_signals(received: list[int]) -> Iterator[None]:
    """Record SIGTERM/SIGINT instead of dying on them, for the duration of the block.

    Why: uvicorn shuts down gracefully on these signals and then raises the signal again for
    the previous handler. With Python's defaults that turns a clean SIGTERM shutdown into death
    by signal (exit 143) and Ctrl-C into a KeyboardInterrupt; the previous handler is this one,
    so a served-and-stopped server exits 0.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    stops = (signal.SIGTERM, signal.SIGINT)
    saved = {sig: signal.signal(sig, lambda sig, _frame: received.append(sig)) for sig in stops}
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def serve_forever(app: Any, sock: socket.socket, *, graceful_seconds: float = 10.0) -> str | None:
    """Serve ``app`` on ``sock`` until SIGTERM or SIGINT, then shut down cleanly; returns the
    name of the signal that stopped it."""
    server = _server(app, graceful_seconds=graceful_seconds)
    received: list[int] = []
    try:
        with _absorbed_stop_signals(received):
            server.run(sockets=[sock])
    finally:
        sock.close()
    if not server.started:
        raise ConfigError("the server did not start (see the log lines above)")
    return signal.Signals(received[0]).name if received else None


class BackgroundServer:
    """``app`` served from a thread on ``host`` (port 0 by default), for tests and notebooks::

    with BackgroundServer(app) as srv:
        client = openai.OpenAI(base_url=srv.base_url, api_key="x")
    """

    def __init__(
        self, app: Any, *, host: str = "127.0.0.1", port: int = 0, graceful_seconds: float = 5.0
    ) -> None:
        self.sock = bind(host, port)
        self.host = host
        self.port = int(self.sock.getsockname()[1])
        self._server = _server(app, graceful_seconds=graceful_seconds)
        self._thread = threading.Thread(target=self._run, name="promptopt-serve", daemon=True)
        self.error: BaseException | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def _run(self) -> None:
        try:
            self._server.run(sockets=[self.sock])
        except BaseException as exc:  # reported by start()/stop() in the caller's thread
            self.error = exc

    def start(self, timeout: float = 20.0) -> BackgroundServer:
        """Start serving and wait until it accepts requests (a started server is returned as is)."""
        if self._thread.ident is not None:
            return self
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the background server did not start: {self.error!r}")
            time.sleep(0.01)
        return self

    def stop(self, timeout: float = 20.0) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout)
        self.sock.close()

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
