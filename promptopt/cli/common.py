"""Helpers shared by the CLI modules: error lines, consoles, model building from flags.

The CLI is the only layer that prints; library code raises ``PromptoptError`` subclasses and this
module's ``fail_line`` turns them into one line on stderr.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from rich.console import Console

from promptopt.errors import ConfigError
from promptopt.llm.base import LLM
from promptopt.llm.budget import Budget
from promptopt.llm.cache import CachePolicy
from promptopt.llm.factory import build_llm
from promptopt.records import read_json_object

EXIT_USAGE = 2
DEFAULT_MODEL = "local"


def fail_line(message: str) -> None:
    """Print one error line on stderr (newlines in the message are folded)."""
    text = " ".join(str(message).split())
    sys.stderr.write(f"promptopt: error: {text}\n")
    sys.stderr.flush()


def console() -> Console:
    """A console for normal output (stdout)."""
    return Console(highlight=False)


def err_console() -> Console:
    """A console for progress and notices (stderr), so stdout stays parseable."""
    return Console(stderr=True, highlight=False)


def open_model(
    spec: str,
    *,
    budget: Budget | None = None,
    cache_policy: CachePolicy = "deterministic",
    **options: Any,
) -> LLM:
    """Build the LLM for a ``--*-model`` flag, with cache and budget."""
    return build_llm(spec, budget=budget, cache_policy=cache_policy, **options)


def load_config_file(path: Path | None) -> dict[str, Any]:
    """Read a ``--config`` JSON file (flags given on the command line win over it)."""
    if path is None:
        return {}
    return read_json_object(path, error=ConfigError, what="config file")


def positive(name: str, value: int | None) -> int | None:
    """Validate a count flag (steps, per-step, ...) as >= 1."""
    if value is not None and value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value}")
    return value
