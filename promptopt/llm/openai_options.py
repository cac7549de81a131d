"""The openai backend's option names, and the environment variables that set their defaults.

Why apart from the backend: which options exist and where their defaults come from is settled in
``from_spec`` before any backend exists; nothing here touches the network.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any, Literal

from promptopt.errors import ConfigError
from promptopt.llm.concurrency import parse_concurrency

Api = Literal["chat", "completions"]
TokenLimitParam = Literal["max_tokens", "max_completion_tokens"]

#: Every option ``from_spec`` passes on to the backend (``api_key`` and ``base_url`` go to the endpoints).
OPTIONS = frozenset(
    {
        "timeout",
        "max_retries",
        "max_concurrency",
        "api",
        "backoff",
        "backoff_max",
        "retry_after_max",
        "token_limit_param",
        "extra_body",
        "structured_output",
        "endpoint_cooloff",
    }
)


#: Environment variables that set defaults for every openai-backend model a command opens, so a CLI
#: user with a slow or flaky server can tune them without a flag on every verb.
ENV_OPTIONS: dict[str, tuple[str, type]] = {
    "PROMPTOPT_REQUEST_TIMEOUT": ("timeout", float),
    "PROMPTOPT_MAX_RETRIES": ("max_retries", int),
    "PROMPTOPT_MAX_CONCURRENCY": ("max_concurrency", int),
}


def env_overrides(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Backend options from ``PROMPTOPT_REQUEST_TIMEOUT`` / ``_MAX_RETRIES`` / ``_MAX_CONCURRENCY``
    (explicit options win). A malformed or negative value is a ConfigError naming the variable."""
    env = os.environ if environ is None else environ
    out: dict[str, Any] = {}
    for var, (key, kind) in ENV_OPTIONS.items():
        raw = env.get(var, "").strip()
        if not raw:
            continue
        if key == "max_concurrency":  # a number or "auto"
            out[key] = parse_concurrency(raw, what=var)
            continue
        try:
            value = kind(raw)
        except ValueError:
            raise ConfigError(f"{var}={raw!r} is not a valid {kind.__name__}") from None
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{var} must be a finite number of seconds, got {raw}")
        if value < 0 or (key != "max_retries" and value == 0):
            raise ConfigError(f"{var} must be {'>= 0' if key == 'max_retries' else '> 0'}, got {raw}")
        out[key] = value
    return out
