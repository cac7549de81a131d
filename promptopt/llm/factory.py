"""Compose a usable LLM from a spec string: backend, then budget, then cache (outermost).

Order matters: a cache hit must cost nothing, so the cache sits outside the budget; the budget
sits outside the backend so that a refused request is never sent.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from promptopt.llm.base import LLM, run_sync
from promptopt.llm.budget import Budget, BudgetedLLM
from promptopt.llm.cache import CachedLLM, CachePolicy, RequestCache
from promptopt.llm.registry import create_backend
from promptopt.paths import request_cache_path


def build_llm(
    spec: str | LLM,
    *,
    budget: Budget | None = None,
    cache: RequestCache | str | Path | None = None,
    cache_policy: CachePolicy = "deterministic",
    **backend_options: Any,
) -> LLM:
    """An LLM for ``spec`` (or an LLM object) with budget accounting and the request cache.

    ``cache``: a RequestCache, a path to the SQLite file, or None for the default location
    (``promptopt.paths.request_cache_path()``). ``cache_policy="off"`` disables it.
    """
    llm = create_backend(spec, **backend_options) if isinstance(spec, str) else spec
    if budget is not None:
        llm = BudgetedLLM(llm, budget)
    if cache_policy != "off":
        store = cache if isinstance(cache, RequestCache) else RequestCache(cache or request_cache_path())
        llm = CachedLLM(llm, store, cache_policy)
    return llm


@contextmanager
def open_models(*specs: str | None, **options: Any) -> Iterator[list[LLM | None]]:
    """Build one LLM per spec (``None`` stays ``None``), and close each of them once on exit.

    Why: a job that names a target and a judge (or a builder and a judge) with the same spec must
    load that model once — a second llama.cpp or transformers copy doubles memory for nothing — and
    must not close the shared object twice. ``options`` go to :func:`build_llm` for every spec.
    """
    opened: dict[str, LLM] = {}
    try:
        for spec in specs:
            if spec is not None and spec not in opened:
                opened[spec] = build_llm(spec, **options)
        yield [opened[s] if s is not None else None for s in specs]
    finally:
        for llm in opened.values():
            run_sync(llm.aclose())
