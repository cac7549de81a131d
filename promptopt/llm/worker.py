"""One dedicated worker thread per in-process backend (llama.cpp, transformers, vLLM).

Why a single thread: the in-process engines are not safe to call concurrently (llama.cpp's
``Llama``, a transformers model mid-``generate``, vLLM's ``LLM``), and an OpenMP llama.cpp build
slows down sharply as soon as a second OS thread calls into it. So a backend creates and calls its
model only on its own worker: the event loop stays free and concurrent requests simply queue.

Why lazy: constructing a backend (for ``--help``, a dry run, or a run the cache answers entirely)
must start no thread; the thread starts with the first call and stops at :meth:`Worker.shutdown`,
after which a later call starts a fresh one.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


def _nothing() -> None:
    """Queued last so that awaiting it waits for every call queued before it."""


class Worker:
    """A lazily started single-thread executor with an async door.

    ``name`` becomes the thread-name prefix (``promptopt-<name>``), which is what shows up in
    ``py-spy`` and thread dumps. The lock only guards creating and detaching the executor.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    @property
    def started(self) -> bool:
        """Whether the thread exists (a backend that was never called has none)."""
        return self._executor is not None

    def _get(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(
                    max_workers=1, thread_name_prefix=f"promptopt-{self.name}"
                )
            return self._executor

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on the worker thread and await its result (exceptions propagate)."""
        return await asyncio.get_running_loop().run_in_executor(self._get(), fn, *args)

    async def shutdown(self, last: Callable[[], object] | None = None) -> None:
        """Stop the thread after the calls already queued, running ``last`` (e.g. free the model) on
        it first; safe to call twice, and a later :meth:`run` starts a new thread.

        Why ``last`` runs on the worker: the model was created there, and the engines expect to be
        torn down on the thread that used them. The event loop is never blocked while waiting.
        """
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is None:
            return
        try:
            await asyncio.get_running_loop().run_in_executor(executor, last or _nothing)
        finally:
            executor.shutdown(wait=False)
