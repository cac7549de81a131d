"""A tracker that can neither fail nor slow the run it tracks.

Why a background thread: a tracking store is I/O the optimization does not need (a remote server
may be slow, retry for minutes, or hang), so every call runs on one worker thread, in the order it
was made, and the optimizer only enqueues. Why "warn once": a broken store would otherwise fail
every step; the first failure disables the tracker for the rest of the run and is logged as one
warning (its message redacted), and later calls are dropped. :meth:`SafeTracker.close` waits for
what is queued while calls keep finishing, and gives up after ``close_timeout`` seconds without
one, so a hung store (an HTTP server that is down: MLflow retries for minutes) cannot keep a
finished run from returning either.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Mapping
from pathlib import Path

from promptopt.journal import redact
from promptopt.tracking.base import FINISHED, Tracker

log = logging.getLogger("promptopt.tracking")

#: seconds without a finished call after which :meth:`SafeTracker.close` stops waiting
CLOSE_TIMEOUT = 30.0

Call = Callable[[Tracker], None]


class SafeTracker:
    """Runs a :class:`Tracker`'s calls on one worker thread; the first failure disables it with one
    warning. ``continued`` says (once :meth:`start` has run on the worker) whether the backend
    continued a recorded run; later queued calls may read it."""

    def __init__(self, tracker: Tracker, *, close_timeout: float = CLOSE_TIMEOUT) -> None:
        self.tracker = tracker
        self.close_timeout = close_timeout
        self.continued = False
        self._queue: queue.SimpleQueue[Call | None] = queue.SimpleQueue()
        self._off = threading.Event()
        self._warned = threading.Lock()  # held forever by the one thread that warned
        self._thread: threading.Thread | None = None
        self._closed = False
        self._done = 0  # calls the worker has finished (how close() tells slow from hung)

    @property
    def enabled(self) -> bool:
        """False once a call has failed (or the tracker is closed): calls are dropped from then on."""
        return not self._off.is_set()

    # -- the calls (each only enqueued)
    def submit(self, call: Call) -> None:
        """Run ``call(tracker)`` on the worker, after every call submitted before it."""
        if self._off.is_set() or self._closed:
            return
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="promptopt-tracking", daemon=True)
            self._thread.start()
        self._queue.put(call)

    def start(self, *, state_file: Path | None, run_name: str, tags: Mapping[str, str], resume: bool) -> None:
        def call(t: Tracker) -> None:
            self.continued = bool(t.start(state_file=state_file, run_name=run_name, tags=tags, resume=resume))

        self.submit(call)

    def log_params(self, params: Mapping[str, str]) -> None:
        self.submit(lambda t: t.log_params(dict(params)))

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        if metrics:
            self.submit(lambda t: t.log_metrics(dict(metrics), step))

    def set_tags(self, tags: Mapping[str, str]) -> None:
        self.submit(lambda t: t.set_tags(dict(tags)))

    def log_text(self, text: str, name: str) -> None:
        self.submit(lambda t: t.log_text(text, name))

    def log_artifact(self, path: Path) -> None:
        self.submit(lambda t: t.log_artifact(path))

    # -- the worker
    def _work(self) -> None:
        while True:
            call = self._queue.get()
            if call is None:
                return
            if self._off.is_set():
                continue
            try:
                call(self.tracker)
            except Exception as exc:  # any failure of the store: warn once, stop tracking
                self.fail(exc)
            self._done += 1

    def fail(self, exc: BaseException | str) -> None:
        """Disable the tracker; the first caller logs the one warning."""
        self._off.set()
        if self._warned.acquire(blocking=False):
            text = exc if isinstance(exc, str) else f"{type(exc).__name__}: {exc}"
            detail = " ".join(str(redact(text)).split())[:500]
            log.warning(
                "experiment tracking (%s) failed and is off for the rest of this run; the run goes on: %s",
                getattr(self.tracker, "name", "tracker"),
                detail,
            )

    def close(self, status: str = FINISHED, timeout: float | None = None) -> bool:
        """End the backend's run with ``status`` and wait for what is queued while the worker gets
        on: it is given up (warned about once, the rest dropped) only when no call finished for
        ``timeout`` seconds (default ``close_timeout``), so a slow store is waited for and a hung
        one is not. True when everything queued was done."""
        if self._closed:
            return True
        self.submit(lambda t: t.end(status))
        self._closed = True
        if self._thread is None:
            return True
        self._queue.put(None)
        limit = self.close_timeout if timeout is None else timeout
        while True:
            seen = self._done
            self._thread.join(limit)
            if not self._thread.is_alive():
                return True
            if self._done == seen:
                self.fail(f"the store did not answer for {limit:g} s; what was left to log is dropped")
                return False
