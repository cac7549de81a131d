"""Compose a usable LLM from a spec string: backend, then budget, then cache (outermost).

Order matters: a cache hit must cost nothing, so the cache sits outside the budget; the budget
sits outside the backend so that a refused request is never sent.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from promptopt.llm.base import LLM
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
