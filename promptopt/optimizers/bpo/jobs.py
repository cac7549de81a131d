"""One resumable kept/dropped build: the scaffolding ``bpo build-data``, ``build-pairs`` and
``build-prefs`` share.

Each of those jobs turns items into records with LLM calls and writes three files beside each
other: the product (``out``: the kept records, the training data), the dropped records
(``<stem>.dropped.jsonl``, so one can see why) and the settings the build ran with
(``<stem>.config.json``, which a rerun must match). A rerun resumes from both journals and retries
only the drops whose reason is retryable. Only the batch function (what is asked and how an answer
is decided) differs between the jobs, so everything else lives here, once.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Hashable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar

from promptopt.errors import ConfigError, DataError
from promptopt.journal import Journal, RoutedJournal, redact
from promptopt.parallel import MapReport, Outcome, resumable_map
from promptopt.records import read_json_object
from promptopt.runs import atomic_write_json

T = TypeVar("T")


class JobReport(Protocol):
    """What :func:`run_kept_dropped` fills in: counts recomputed from the latest records, plus
    what this run did."""

    resumed: int
    processed: int
    stopped: str | None
    seconds: float

    def count(self, latest: Mapping[str, Mapping[str, Any]]) -> None: ...


R = TypeVar("R", bound=JobReport)


def _stem(out: str | Path) -> tuple[Path, str]:
    p = Path(out)
    return p, p.name[: -len(".jsonl")] if p.name.endswith(".jsonl") else p.stem


def dropped_path(out: str | Path) -> Path:
    """Where dropped records go: ``data.jsonl`` → ``data.dropped.jsonl``."""
    p, stem = _stem(out)
    return p.with_name(f"{stem}.dropped.jsonl")


def config_path(out: str | Path) -> Path:
    """Where a build's settings go: ``data.jsonl`` → ``data.config.json`` (checked on a rerun)."""
    p, stem = _stem(out)
    return p.with_name(f"{stem}.config.json")


def check_build_settings(out: str | Path, settings: Mapping[str, Any]) -> Path:
    """Refuse to mix records built with other settings into ``out``; returns the settings file.

    Read-only: :func:`run_kept_dropped` writes the file once the build starts. Outputs from
    before the settings file existed are accepted as they are.
    """
    path = config_path(out)
    if path.exists():
        have = read_json_object(path, error=DataError, what="build settings")
        wanted = json.loads(json.dumps(redact(dict(settings)), default=str))
        diff = sorted(k for k in set(have) | set(wanted) if have.get(k) != wanted.get(k))
        if diff:
            raise DataError(
                f"{out} was built with other settings ({', '.join(diff)} differ; see {path.name}); "
                "choose another --out or pass the same settings"
            )
    return path


def check_limit(limit: int | None) -> None:
    """The jobs' shared ``--limit`` rule (how many input rows to use; None: all)."""
    if limit is not None and limit < 1:
        raise ConfigError(f"--limit must be a positive integer, got {limit}")


def decided_unless(retryable: frozenset[str]) -> Callable[[Mapping[str, Any]], bool]:
    """``is_done`` for a build: an item is done unless its latest record is a drop whose reason is
    in ``retryable`` (a failed model or judge call, worth asking again on a rerun)."""

    def is_decided(record: Mapping[str, Any]) -> bool:
        return not (record.get("status") == "dropped" and record.get("reason") in retryable)

    return is_decided


def _route(record: Mapping[str, Any]) -> str:
    return "kept" if record.get("status") == "kept" else "dropped"


async def run_kept_dropped(
    items: Iterable[T],
    fn: Callable[[list[T]], Awaitable[Sequence[Outcome]]],
    out: str | Path,
    settings: Mapping[str, Any],
    report_type: Callable[..., R],
    *,
    key: Callable[[T], Hashable],
    concurrency: int,
    retryable: frozenset[str],
    progress: Callable[[int, int, R], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    on_open: Callable[[Sequence[Mapping[str, Any]]], None] | None = None,
) -> R:
    """Run (or continue) a kept/dropped build of ``items`` into ``out``; returns its report, a
    ``report_type(out=..., dropped_out=...)`` whose counts include what earlier runs decided.

    The settings are checked against an earlier run's before anything is opened, and written once
    both journals opened. ``on_open(kept_records)`` sees the kept records of earlier runs before
    the first batch (build-data deduplicates against them). ``progress(done, total, report)``
    after every batch; ``should_stop()`` polled between batches.
    """
    start = time.monotonic()
    settings_file = check_build_settings(out, settings)
    report = report_type(out=str(out), dropped_out=str(dropped_path(out)))
    journals = {
        "dropped": Journal(dropped_path(out), error=DataError),  # first: a later kept record wins
        "kept": Journal(out, error=DataError),
    }
    with RoutedJournal(journals, _route) as log:
        if not settings_file.exists():
            atomic_write_json(settings_file, redact(settings))
        if on_open is not None:
            on_open(journals["kept"].records)

        def on_batch(done: int, total: int, m: MapReport[T]) -> None:
            report.count(m.latest)
            if progress is not None:
                progress(done, total, report)

        m = await resumable_map(
            items,
            fn,
            log,
            key=key,
            concurrency=concurrency,
            stop=should_stop,
            progress=on_batch,
            is_done=decided_unless(retryable),
        )
    report.count(m.latest)
    report.resumed, report.processed, report.stopped = m.resumed, m.processed, m.stopped
    report.seconds = time.monotonic() - start
    return report
