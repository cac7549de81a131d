"""``resumable_map``: the one resumable, journalled batch loop.

``bpo build-data`` (one rewrite request per preference pair) and ``bpo eval`` (two answers and a
judgement per test prompt) are the same job: a list of items, each turned into one record by LLM
calls, where a long run must survive Ctrl-C, a kill, a budget running out and a server going away,
and a rerun must continue where the last one stopped. This module is that loop, once:

* bounded concurrency: items go to ``fn`` in batches of ``concurrency`` (``fn`` sends one batched
  ``agenerate`` call, which is what local backends batch well and remote ones run concurrently);
* journalled: every outcome is appended (flushed, fsync'd) to ``log`` as soon as its batch is back;
* resumable: an item whose latest logged record ``is_done`` is skipped; any other (a recorded
  failure) is tried again, so failures are recorded and never lost;
* stop-aware: ``stop()`` is polled between batches; a budget refusal ends the map after its batch
  is recorded;
* unreachable: when *no* item of a batch got through because of connection or authentication
  errors, nothing of that batch is logged and the error is raised (a run against a wrong port must
  fail with one clear error, not record every item as failed and exit 0).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from promptopt.errors import ConfigError
from promptopt.journal import Log
from promptopt.llm.base import BudgetExceededError, raise_if_unreachable
from promptopt.llm.outage import DEFAULT_REASK_ROUNDS, is_outage

T = TypeVar("T")

ID_FIELD = "id"
STOP_REQUESTED = "stop requested"
STOP_BUDGET = "budget"
#: ``stopped`` when items still failed from an outage after the re-ask rounds (rerun to retry them)
STOP_OUTAGE = "outage"


@dataclass(frozen=True)
class Outcome:
    """What the batch function returns for one item: the record to journal (without its id; the
    map adds it) and, when the item failed, the exception behind the failure (used for the
    unreachable and budget rules; the record itself must say that it failed)."""

    record: Mapping[str, Any]
    error: BaseException | None = None


@dataclass
class MapReport(Generic[T]):
    """What one :func:`resumable_map` call did, and the latest record of every item."""

    total: int = 0  # distinct items asked for
    resumed: int = 0  # already done before this call
    processed: int = 0  # sent to ``fn`` in this call
    stopped: str | None = None  # "stop requested" or "budget" when it ended early
    latest: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> latest record (old and new)
    outages: int = 0  # items still failing from an outage after the re-ask rounds (redo: rerun)


def not_an_error(record: Mapping[str, Any]) -> bool:
    """Default ``is_done``: an item is done unless its latest record has ``status: "error"``."""
    return record.get("status") != "error"


def latest_by_id(records: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """The last record per ``id`` (a retry's record replaces the failure it retried)."""
    latest: dict[str, dict[str, Any]] = {}
    for r in records:
        if ID_FIELD in r:
            latest[str(r[ID_FIELD])] = dict(r)
    return latest


async def resumable_map(
    items: Iterable[T],
    fn: Callable[[list[T]], Awaitable[Sequence[Outcome]]],
    log: Log,
    *,
    key: Callable[[T], Hashable],
    concurrency: int = 8,
    stop: Callable[[], bool] | None = None,
    progress: Callable[[int, int, MapReport[T]], None] | None = None,
    is_done: Callable[[Mapping[str, Any]], bool] = not_an_error,
    reask_rounds: int = DEFAULT_REASK_ROUNDS,
) -> MapReport[T]:
    """Turn every item not yet done in ``log`` into a journalled record, ``concurrency`` at a time.

    ``key(item)`` is the item's stable id (stored as the record's ``id``; items with equal keys are
    done once). ``fn(batch)`` returns one :class:`Outcome` per item, in order. ``progress(done,
    total, report)`` is called after every batch, with counts over the items still to do at the
    start of this call. Exceptions from ``fn`` propagate with nothing of that batch logged.

    Items whose outcome failed from an outage (:func:`promptopt.llm.outage.is_outage`: the server,
    not the item) are run again up to ``reask_rounds`` times; ``report.outages`` counts those still
    failing, so the caller can say the job is incomplete rather than present it as done.
    """
    if concurrency < 1:
        raise ConfigError(f"--concurrency must be >= 1, got {concurrency}")
    report: MapReport[T] = MapReport(latest=latest_by_id(log.records))
    todo: list[tuple[str, T]] = []
    queued: set[str] = set()
    for item in items:
        ident = str(key(item))
        if ident in queued:
            continue
        queued.add(ident)
        rec = report.latest.get(ident)
        if rec is not None and is_done(rec):
            report.resumed += 1
        else:
            todo.append((ident, item))
    report.total = len(queued)
    outaged = await _pass(todo, fn, log, report, concurrency, stop, progress, first=True)
    for _ in range(reask_rounds):  # calls that failed from an outage: asked again (promptopt.llm.outage)
        if not outaged or report.stopped:
            break
        again = [(ident, item) for ident, item in todo if ident in outaged]
        outaged = await _pass(again, fn, log, report, concurrency, stop, None, first=False)
    report.outages = len(outaged)
    if outaged and report.stopped is None:  # incomplete, and said so: never presented as done
        report.stopped = STOP_OUTAGE
    return report


async def _pass(
    todo: list[tuple[str, T]],
    fn: Callable[[list[T]], Awaitable[Sequence[Outcome]]],
    log: Log,
    report: MapReport[T],
    concurrency: int,
    stop: Callable[[], bool] | None,
    progress: Callable[[int, int, MapReport[T]], None] | None,
    *,
    first: bool,
) -> set[str]:
    """One pass of :func:`resumable_map` over ``todo``; returns the ids that failed from an outage.
    Only the first pass raises for a batch that reached no server (a re-ask pass holds only items
    that already failed, so "none got through" says nothing new: they are recorded again)."""
    outaged: set[str] = set()
    for start in range(0, len(todo), concurrency):
        if stop is not None and stop():
            report.stopped = STOP_REQUESTED
            break
        batch = todo[start : start + concurrency]
        outcomes = list(await fn([item for _, item in batch]))
        if len(outcomes) != len(batch):
            raise ValueError(f"batch function returned {len(outcomes)} outcomes for {len(batch)} items")
        if first:
            raise_if_unreachable([o.error for o in outcomes])  # nothing logged: a rerun redoes the batch
        for (ident, _), outcome in zip(batch, outcomes, strict=True):
            report.latest[ident] = log.append({ID_FIELD: ident, **outcome.record})
            if isinstance(outcome.error, BudgetExceededError):
                report.stopped = STOP_BUDGET
            if is_outage(outcome.error):
                outaged.add(ident)
        report.processed += len(batch)
        if progress is not None:
            progress(start + len(batch), len(todo), report)
        if report.stopped == STOP_BUDGET:
            break
    return outaged
