"""The metric contract: how one answer to one example becomes a value in [0, 1] and a reason.

Why one small contract: every scoring path (full training scores, racing rungs, validation, test,
reports) goes through it, so a user's own metric — a function, a regex, a judge — scores exactly
what the built-in graders score. It is the shape DSPy, GEPA and TextGrad users already know:
``metric(example, answer) -> value`` with optional textual feedback, which reflective proposers
read.

- :class:`Score`: ``value`` in [0, 1] (1 is best), ``feedback`` (why; shown in reports and to a
  reflective optimizer), ``prediction`` (what was read from the answer, when the metric reads one),
  ``error`` (the answer could not be scored, e.g. a judge call failed: counted as a failed request,
  never as a 0).
- :class:`MetricItem`: what a metric is given: the example, the model's answer, and — for metrics
  that compare against it (pairwise judging) — the answer the same model gave *without* the
  instruction (``baseline``).
- :class:`Metric`: ``name``, ``needs_gold`` (refuse data without gold answers), ``needs_baseline``
  (the scorer also answers every example without the instruction), and
  ``async ascore(items) -> list[Score]``: a batch, so a judge sends its requests concurrently.
- :func:`as_metric`: a user's callable ``f(example, answer)`` (sync or async) returning a bool, a
  number, a ``Score``, a ``(value, feedback)`` pair or a ``{"value", "feedback"}`` mapping becomes
  a :class:`Metric`.

A metric that raises, or returns a value outside [0, 1] or NaN, is a bug in the metric, not a wrong
answer: :class:`MetricError` names the metric and the example, and the run stops there (the step is
redone on resume), so nothing is silently scored 0.
"""

from __future__ import annotations

import asyncio
import inspect
import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from promptopt.errors import PromptoptError


class MetricError(PromptoptError):
    """A metric failed or returned something that is not a score (a bug in the metric)."""


class ExampleLike(Protocol):
    """What a metric may read of an example (``promptopt.tasks.instructions.datasets.Example``).

    ``target`` is the gold answer, or None for a prompts-only dataset; ``fields`` are the row's
    columns as strings (the user's own metric reads any of them: ``example.fields["label"]``).
    """

    @property
    def id(self) -> str: ...
    @property
    def input(self) -> str: ...
    @property
    def target(self) -> str | None: ...
    @property
    def fields(self) -> Mapping[str, Any]: ...


@dataclass(frozen=True)
class Score:
    """One answer's value in [0, 1] (1 is best), why (``feedback``), and what was read from it."""

    value: float
    feedback: str | None = None
    prediction: str | None = None
    #: set when the answer could not be scored (a judge call failed): the evaluator counts the
    #: example as failed (retryable), not as a 0
    error: str | None = None

    @property
    def correct(self) -> bool:
        """Full marks (what the paper's accuracy counts)."""
        return self.value >= 1.0 - 1e-9


@dataclass(frozen=True)
class MetricItem:
    """What a metric scores: ``answer`` to ``example``; ``baseline`` is the answer without the
    instruction (only for metrics with ``needs_baseline``)."""

    example: Any
    answer: str
    baseline: str | None = None


@runtime_checkable
class Metric(Protocol):
    """Turns answers into scores; see the module docstring."""

    name: str
    needs_gold: bool
    needs_baseline: bool

    async def ascore(self, items: Sequence[MetricItem]) -> list[Score]: ...


def to_score(raw: Any, where: str) -> Score:
    """A metric's return value as a :class:`Score` (bool, number, Score, ``(value, feedback)``,
    ``{"value": ..., "feedback": ...}``), or a MetricError saying what came back."""
    feedback: Any = None
    prediction: Any = None
    if isinstance(raw, Score):
        value, feedback, prediction = raw.value, raw.feedback, raw.prediction
    elif isinstance(raw, Mapping):
        if "value" not in raw and "score" not in raw:
            raise MetricError(f"{where} returned a mapping without 'value': {sorted(map(str, raw))}")
        value = raw.get("value", raw.get("score"))
        feedback, prediction = raw.get("feedback"), raw.get("prediction")
    elif isinstance(raw, tuple) and len(raw) == 2:
        value, feedback = raw
    else:
        value = raw
    if isinstance(value, bool):
        value = 1.0 if value else 0.0
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise MetricError(
            f"{where} returned {type(value).__name__} {str(value)[:60]!r}, not a number"
        ) from None
    if math.isnan(number) or not 0.0 <= number <= 1.0:
        raise MetricError(f"{where} returned {number!r}; a metric value must be in [0, 1]")
    return Score(
        number,
        None if feedback is None else str(feedback),
        None if prediction is None else str(prediction),
    )


class FunctionMetric:
    """A user's callable ``f(example, answer)`` (sync or async) as a :class:`Metric`.

    Sync functions run in worker threads (``asyncio.to_thread``) so a slow metric does not block
    the event loop that is waiting on the scorer; async ones are gathered. ``needs_gold`` is False
    by default: the function decides what it reads."""

    def __init__(
        self,
        fn: Callable[[Any, str], Any] | Callable[[Any, str], Awaitable[Any]],
        name: str | None = None,
        *,
        needs_gold: bool = False,
    ) -> None:
        if not callable(fn):
            raise MetricError(f"a metric must be callable, got {type(fn).__name__}")
        self.fn = fn
        self.name = name or getattr(fn, "__qualname__", None) or type(fn).__name__
        self.needs_gold = needs_gold
        self.needs_baseline = False
        call = vars(type(fn)).get("__call__")  # an object whose __call__ is async
        self._is_async = inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(call)

    async def _one(self, item: MetricItem) -> Score:
        where = f"metric {self.name!r} on example {getattr(item.example, 'id', '?')!r}"
        try:
            if self._is_async:
                raw = await self.fn(item.example, item.answer)  # type: ignore[misc]
            else:
                raw = await asyncio.to_thread(self.fn, item.example, item.answer)
        except MetricError:
            raise
        except Exception as exc:  # noqa: BLE001 - a user's metric can raise anything: name it
            raise MetricError(
                f"{where} raised {type(exc).__name__}: {' '.join(str(exc).split())[:200]}"
            ) from exc
        return to_score(raw, where)

    async def ascore(self, items: Sequence[MetricItem]) -> list[Score]:
        return list(await asyncio.gather(*(self._one(it) for it in items)))


class SyncMetric:
    """A pure, fast rule (the built-ins) as a :class:`Metric`: scored inline, no threads."""

    def __init__(self, name: str, fn: Callable[[Any, str], Score], *, needs_gold: bool = True) -> None:
        self.name = name
        self.fn = fn
        self.needs_gold = needs_gold
        self.needs_baseline = False

    async def ascore(self, items: Sequence[MetricItem]) -> list[Score]:
        return [self.fn(it.example, it.answer) for it in items]


def as_metric(metric: Any, name: str | None = None) -> Metric:
    """``metric`` as a :class:`Metric`: one already (it has ``ascore``) as is, a callable wrapped
    in :class:`FunctionMetric`; anything else is a MetricError."""
    if isinstance(metric, Metric):
        return metric
    if callable(metric):
        return FunctionMetric(metric, name)
    raise MetricError(f"a metric is a name, a callable or a Metric, got {type(metric).__name__}")


async def ascore_items(metric: Metric, items: Sequence[MetricItem]) -> list[Score]:
    """``metric.ascore(items)`` checked: one Score per item, each a valid Score."""
    if not items:
        return []
    out = await metric.ascore(items)
    if len(out) != len(items):
        raise MetricError(f"metric {metric.name!r} returned {len(out)} scores for {len(items)} answers")
    return [s if isinstance(s, Score) else to_score(s, f"metric {metric.name!r}") for s in out]
