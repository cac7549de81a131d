"""A reflective run's journal: the records an iteration writes, and what a resume reads back.

A reflective run is an OPRO-kind run (``config.json`` ``kind: "opro"``, ``opro.proposer:
"reflective"``), so its history is OPRO's: each iteration commits at most one ``trial`` (the child:
``scored`` with its validation accuracy, ``rejected`` when it did not beat its parent on the
minibatch, or ``unparseable`` / ``invalid`` / ``duplicate`` / ``failed``) and a ``step_done``; step
0 holds the starting instructions (``initial``). ``opro report``, the statistics and the final
report read it like any OPRO run. Around them, written the moment each exists:

- ``step_started``: the iteration's ``parent`` (pool index), ``parent_text`` and ``minibatch``
  (training example ids);
- ``minibatch_scored``: the per-example values of the ``parent`` or the ``child`` on the minibatch;
- ``reflection``: the optimizer LLM's raw answer (and the prompt it answered);
- ``step_done`` adds ``metric_calls`` (the run's total after this iteration) and ``outcome``.

A trial's ``info`` holds ``val`` (per-example validation values, for the pool), ``parent``,
``minibatch`` (parent and child sums) and ``metric_calls`` (what the iteration cost).

Resume: the committed iterations rebuild the pool and the metric-call count; an iteration cut short
reuses what it recorded (its reflection is never asked again, its minibatch values are not
re-scored) and does the rest. An iteration ended by ``step_aborted`` (budget, outage) is redone
from the start, as an OPRO step is.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from promptopt.errors import RunDirError
from promptopt.records import check_shape

MINIBATCH_EVENT = "minibatch_scored"
REFLECTION_EVENT = "reflection"


@dataclass(frozen=True)
class MinibatchRecord:
    """``minibatch_scored``: one candidate's values on the iteration's minibatch."""

    step: int
    role: Literal["parent", "child"]
    values: list[float]


@dataclass(frozen=True)
class ReflectionRecord:
    """``reflection``: the optimizer LLM's raw answer."""

    step: int
    raw: str


@dataclass(frozen=True)
class StepDoneCalls:
    """What a resume reads of a reflective ``step_done``."""

    step: int
    metric_calls: int = 0


_SHAPES: Mapping[str, type] = {
    MINIBATCH_EVENT: MinibatchRecord,
    REFLECTION_EVENT: ReflectionRecord,
    "step_done": StepDoneCalls,
}
_HINT = "the journal was edited or written by another version; restore it, or start a new run"


@dataclass
class Unfinished:
    """What an iteration cut short had recorded (None: not reached)."""

    step: int
    parent: list[float] | None = None
    child: list[float] | None = None
    raw: str | None = None
    planned: dict[str, Any] | None = None


@dataclass
class ReflectiveReplay:
    """The metric calls of the committed iterations, and the iteration after them as far as it got."""

    metric_calls: int
    unfinished: Unfinished


def replay_reflective(records: Iterable[Mapping[str, Any]], next_step: int) -> ReflectiveReplay:
    """Read the reflective records of a journal (see the module docstring); ``next_step`` is the
    first iteration not committed (OPRO's replay says which)."""
    calls = 0
    pieces: dict[int, Unfinished] = {}
    for i, rec in enumerate(records, 1):
        event = rec.get("event")
        shape = _SHAPES.get(event) if isinstance(event, str) else None
        if shape is not None:
            where = f"journal: record {i} ({event})"
            check_shape(shape, dict(rec), where=where, error=RunDirError, finite=False, hint=_HINT)
        step = rec.get("step")
        if event == "step_done":
            calls = int(rec.get("metric_calls", calls))
            pieces.pop(int(step), None)  # type: ignore[arg-type]
        elif event == "step_aborted":
            pieces.pop(int(step), None)  # type: ignore[arg-type]  # redone from the start
        elif event == "step_started" and "parent" in rec:
            u = pieces.setdefault(int(step), Unfinished(int(step)))  # type: ignore[arg-type]
            u.planned = {"parent": rec.get("parent"), "minibatch": rec.get("minibatch")}
        elif event == MINIBATCH_EVENT:
            u = pieces.setdefault(int(rec["step"]), Unfinished(int(rec["step"])))
            setattr(u, rec["role"], [float(v) for v in rec["values"]])
        elif event == REFLECTION_EVENT:
            u = pieces.setdefault(int(rec["step"]), Unfinished(int(rec["step"])))
            u.raw = str(rec["raw"])
    return ReflectiveReplay(calls, pieces.get(next_step) or Unfinished(next_step))


def minibatch_record(step: int, role: str, values: list[float]) -> dict[str, Any]:
    return {"event": MINIBATCH_EVENT, "step": step, "role": role, "values": values}


def reflection_record(step: int, raw: str, prompt: str) -> dict[str, Any]:
    return {"event": REFLECTION_EVENT, "step": step, "raw": raw, "prompt": prompt}
