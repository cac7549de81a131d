"""Compose a usable LLM from a spec string: backend, then budget, then cache (outermost).

Order matters: a cache hit must cost nothing, so the cache sits outside the budget; the budget
sits outside the backend so that a refused request is never sent.

Credentials (:mod:`promptopt.llm.credentials`): ``api_key_env`` names the environment variable
that holds the model's key and ``headers`` are sent with every request; both apply to the HTTP
schemes only (``openai:``, ``litellm:``), and neither reaches the model's ``name`` (a cache key).

Prices: a backend that knows its model's price (``known_price``: LiteLLM's price table) puts it
into the budget's table when the budget has none for the model, so a user's ``--price`` wins.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from promptopt.errors import ConfigError
from promptopt.llm.base import LLM, run_sync
from promptopt.llm.budget import Budget, BudgetedLLM
from promptopt.llm.cache import CachedLLM, CachePolicy, RequestCache
from promptopt.llm.credentials import key_from_env, normalise_headers
from promptopt.llm.registry import ModelSpec, create_backend, takes_credentials
from promptopt.paths import request_cache_path


def build_llm(
    spec: str | LLM,
    *,
    budget: Budget | None = None,
    cache: RequestCache | str | Path | None = None,
    cache_policy: CachePolicy = "deterministic",
    api_key_env: str | None = None,
    headers: Mapping[str, str] | None = None,
    **backend_options: Any,
) -> LLM:
    """An LLM for ``spec`` (or an LLM object) with budget accounting and the request cache.

    ``cache``: a RequestCache, a path to the SQLite file, or None for the default location
    (``promptopt.paths.request_cache_path()``). ``cache_policy="off"`` disables it.
    ``api_key_env``: the name of the environment variable holding the key (never the key);
    ``headers``: extra HTTP headers. Both for ``openai:`` and ``litellm:`` specs only.
    """
    if isinstance(spec, str):
        backend_options.update(_credential_options(spec, api_key_env, headers))
        llm = create_backend(spec, **backend_options)
    elif api_key_env is not None or headers:
        raise ConfigError("api_key_env and headers apply to a model spec string, not to an LLM object")
    else:
        llm = spec
    if budget is not None:
        _adopt_price(llm, budget)
        llm = BudgetedLLM(llm, budget)
    if cache_policy != "off":
        store = cache if isinstance(cache, RequestCache) else RequestCache(cache or request_cache_path())
        llm = CachedLLM(llm, store, cache_policy)
    return llm


def _credential_options(
    spec: str, api_key_env: str | None, headers: Mapping[str, str] | None
) -> dict[str, Any]:
    """``api_key`` (read from the variable ``api_key_env``) and ``headers`` for an HTTP spec."""
    if api_key_env is None and not headers:
        return {}
    if not takes_credentials(spec):
        scheme = ModelSpec.parse(spec).scheme
        raise ConfigError(
            f"api_key_env and headers apply to HTTP models (openai:, litellm:), not to a {scheme!r} model"
        )
    out: dict[str, Any] = {}
    if api_key_env is not None:
        out["api_key"] = key_from_env(api_key_env)
    if headers:
        out["headers"] = normalise_headers(headers)
    return out


def _adopt_price(llm: Any, budget: Budget) -> None:
    """The backend's own price for its model (``known_price``, USD per 1M input/output tokens) into
    ``budget``'s table, unless the table prices the model already (the user's price wins)."""
    price = getattr(llm, "known_price", None)
    if price is not None and budget.price(llm.name) is None:
        budget.prices = {**budget.prices, llm.name: (float(price[0]), float(price[1]))}


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
