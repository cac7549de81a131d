"""A ``litellm:`` spec → the model, its api_base and the URL's secrets; LiteLLM imported as promptopt
needs it; the model's price from LiteLLM's table.

Why apart from the backend: this is where the scheme meets LiteLLM's module-level settings and
where a spec is checked, both before any backend exists (see :mod:`promptopt.llm.litellm_backend`).
"""

from __future__ import annotations

import os
from types import ModuleType
from urllib.parse import parse_qsl, urlsplit

from promptopt.errors import ConfigError
from promptopt.extras import require
from promptopt.llm.openai_spec import public_url, split_spec


def import_litellm() -> ModuleType:
    """LiteLLM, imported on first use with the local price table and without its printed hints."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    litellm = require("litellm", "litellm", what="model spec 'litellm:...'")
    litellm.suppress_debug_info = True
    return litellm


def parse_rest(rest: str, api_base: str | None = None) -> tuple[str, str | None, list[str]]:
    """``"<provider/model>[@<api_base>]"`` → (model, api_base, secrets of the URL). A URL must be
    http(s) with a host and no ``user:password@`` (credentials go in the key variable or a header)."""
    model, url = split_spec(rest)
    if not model:
        raise ConfigError(
            "the litellm backend needs a model: 'litellm:<provider/model>' or "
            "'litellm:<provider/model>@<api_base>' (e.g. litellm:anthropic/claude-3-5-haiku-latest)"
        )
    if url is not None and api_base is not None and url != api_base:
        raise ConfigError(
            "give the api_base either in the spec (litellm:<model>@<url>) or as api_base, not both"
        )
    url = url or api_base
    if url is None:
        return model, None, []
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise ConfigError(
            "the api_base URL cannot be parsed; expected e.g. http://127.0.0.1:8000/v1"
        ) from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"api_base {public_url(url)!r} must be an http:// or https:// URL with a host")
    if parts.username or parts.password:
        raise ConfigError(
            "the litellm api_base must not carry user:password@; give the key with --optimizer-api-key-env / "
            "--scorer-api-key-env (Python: api_key_env) or a --header"
        )
    secrets = [parts.query, *(v for _, v in parse_qsl(parts.query))] if parts.query else []
    return model, url, secrets


def known_price(litellm: ModuleType, model: str, provider: str | None) -> tuple[float, float] | None:
    """(input, output) USD per 1M tokens from LiteLLM's price table, or None where it has none."""
    try:
        info = litellm.get_model_info(model, custom_llm_provider=provider)
    except Exception:  # LiteLLM raises its own (and plain) exceptions for a model it does not know
        return None
    inp, out = info.get("input_cost_per_token"), info.get("output_cost_per_token")
    if not isinstance(inp, int | float) or not isinstance(out, int | float):
        return None
    return float(inp) * 1_000_000, float(out) * 1_000_000
