"""Helpers shared by the benchmark scripts: JSON output, machine facts, instrumented LLM wrappers.

Why the wrappers live here and not in the library: they exist to measure the library from the
outside (how many requests reached the backend, how long the backend was busy), and a benchmark
that needed hooks inside the code it measures would be measuring something else.

Scripts run as ``python bench/<name>.py``, so this directory is on ``sys.path`` and they import
this module as ``_common``.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import random
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from promptopt.errors import PromptoptError
from promptopt.llm.base import LLM, LLMWrapper, Request


def emit(bench: str, figure: str, **fields: Any) -> dict[str, Any]:
    """Print one figure as one JSON line on stdout (the scripts' only output there)."""
    record = {"bench": bench, "figure": figure, **fields}
    print(json.dumps(record, sort_keys=False, default=_jsonable), flush=True)
    return record


def _jsonable(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 4)
    return str(value)


def run_main(main: Callable[[], None]) -> None:
    """Run a script's ``main``; a PromptoptError (no data, no model, bad option) becomes one
    stderr line and exit status 2, as in the CLI, instead of a traceback."""
    try:
        main()
    except PromptoptError as exc:
        sys.stderr.write(f"bench: error: {' '.join(str(exc).split())}\n")
        raise SystemExit(2) from None


def machine() -> dict[str, Any]:
    """Where and when a figure was measured; the load average says how shared the CPU was."""
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = None
    return {
        "date_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M"),
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "loadavg": load,
    }


def r(x: float | None, digits: int = 3) -> float | None:
    """Round for printing (None passes through)."""
    return None if x is None else round(float(x), digits) + 0.0  # + 0.0: no "-0.0"


class InstrumentedLLM(LLMWrapper):
    """Counts the requests and batches that reach ``inner`` and how long ``inner`` was busy.

    ``busy_seconds`` is the union of the intervals during which at least one batch was inside
    ``inner.agenerate`` (overlapping batches are not double-counted), so ``wall - busy`` is time
    spent anywhere else: the framework, the task, the journal, the cache.
    """

    def __init__(self, inner: LLM) -> None:
        super().__init__(inner)
        self.requests = 0
        self.batches = 0
        self.busy_seconds = 0.0
        self._active = 0
        self._since = 0.0
        self._lock = threading.Lock()

    async def agenerate(self, requests: Sequence[Request], *, return_exceptions: bool = False) -> list[Any]:
        with self._lock:
            self.requests += len(requests)
            self.batches += 1
            if self._active == 0:
                self._since = time.perf_counter()
            self._active += 1
        try:
            return await self.inner.agenerate(requests, return_exceptions=return_exceptions)
        finally:
            with self._lock:
                self._active -= 1
                if self._active == 0:
                    self.busy_seconds += time.perf_counter() - self._since

    def reset(self) -> None:
        with self._lock:
            self.requests = self.batches = 0
            self.busy_seconds = 0.0


def tsp_random_search(task: Any, evaluations: int, *, seed: int) -> dict[str, Any]:
    """Best of ``evaluations`` distinct random tours from node 0 (the TSP task's own tour format).

    Same prior as OPRO's starting tours: uniformly random permutations.
    """
    rng = random.Random(seed)
    rest = list(range(1, task.n))
    seen: set[tuple[int, ...]] = set()
    best = float("inf")
    tries = 0
    while len(seen) < evaluations and tries < 100 * max(evaluations, 1):
        tries += 1
        rng.shuffle(rest)
        tour = (0, *rest)
        if tour in seen:
            continue
        seen.add(tour)
        best = min(best, task.length(tour))
    return {"evaluations": len(seen), "best_length": best}
