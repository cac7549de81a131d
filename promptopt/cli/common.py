"""Helpers shared by the CLI modules: error lines, consoles, model building from flags.

The CLI is the only layer that prints; library code raises ``PromptoptError`` subclasses and this
module's ``fail_line`` turns them into one line on stderr.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

from rich.console import Console
from rich.table import Table

from promptopt.errors import ConfigError
from promptopt.llm.base import LLM, LLMOutageError
from promptopt.llm.budget import Budget
from promptopt.llm.cache import CachePolicy
from promptopt.llm.credentials import ModelAccess, parse_headers
from promptopt.llm.factory import build_llm
from promptopt.parallel import STOP_OUTAGE
from promptopt.records import check_shape, read_json_object

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


def model_access(
    optimizer_key_env: str | None, scorer_key_env: str | None, headers: list[str]
) -> ModelAccess:
    """``--optimizer-api-key-env``, ``--scorer-api-key-env`` and ``--header K=V`` as one
    :class:`~promptopt.llm.credentials.ModelAccess` (names of key variables; header values are
    kept in memory only)."""
    return ModelAccess(optimizer_key_env or None, scorer_key_env or None, parse_headers(headers))


#: the help of ``--header``, shared by the commands that take it
HEADER_HELP = (
    "Extra HTTP header NAME=VALUE sent with every request of every HTTP model of the run (openai:, "
    "litellm:; repeatable). Values never reach a file or a message; a run records the names, and "
    "--resume needs the same headers again."
)


def load_config_file(path: Path | None, shape: type | None = None) -> dict[str, Any]:
    """Read a ``--config`` JSON file (flags given on the command line win over it). ``shape``: the
    dataclass whose fields are the keys the file may hold, with their types; a key that is none of
    them, or a value of the wrong type, is one ConfigError line before anything runs."""
    if path is None:
        return {}
    data = read_json_object(path, error=ConfigError, what="config file")
    if shape is not None:
        check_shape(shape, data, where=f"config file {path}", error=ConfigError, unknown="refuse")
    return data


def positive(name: str, value: int | None) -> int | None:
    """Validate a count flag (steps, per-step, ...) as >= 1."""
    if value is not None and value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value}")
    return value


# --------------------------------------------------------------------------- resumable builds
# build-data, build-pairs and build-prefs print their progress, counts and an early stop alike.


class BuildCounts(Protocol):
    kept: int
    dropped: Mapping[str, int]


def build_progress(err: Console) -> Callable[[int, int, BuildCounts], None]:
    """The per-batch progress line of a resumable build (on stderr)."""

    def progress(done: int, total: int, r: BuildCounts) -> None:
        err.print(f"  {done}/{total} processed, kept {r.kept}, dropped {sum(r.dropped.values())}")

    return progress


def counts_table(title: str, report: BuildCounts, *, kept_label: str = "kept") -> Table:
    """A build's counts: kept, then dropped per reason (callers may add rows)."""
    table = Table(title=title)
    table.add_column("status / reason")
    table.add_column("count", justify="right")
    table.add_row(kept_label, str(report.kept))
    for reason, n in sorted(report.dropped.items()):
        table.add_row(f"dropped: {reason}", str(n))
    return table


def print_stopped(con: Console, stopped: str | None) -> None:
    """Say that a run ended early and that rerunning the command continues it; a job left
    incomplete by an outage is an error (exit 2) after everything it did is saved and printed."""
    if stopped == STOP_OUTAGE:
        raise LLMOutageError(
            "some items failed from an outage even after re-asking them; everything else is saved — "
            "rerun the same command to retry them"
        )
    if stopped:
        con.print(f"stopped early ({stopped}); rerun the same command to continue")
