"""The one Optimizer interface, its records, and composable stop conditions.

Why one protocol (a sync and an async door with the same keywords): OPRO and BPO differ in
everything but this — take a task, use an LLM, respect a budget, record into a run, return a
Result — so that is all callers depend on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    from pathlib import Path

    from promptopt.llm.base import LLM
    from promptopt.llm.budget import Budget
    from promptopt.runs import Run, StopFlag
    from promptopt.tasks.base import Task

TrialStatus = Literal["scored", "unparseable", "invalid", "duplicate", "failed", "initial"]


@dataclass(frozen=True)
class Trial:
    """One proposal and what became of it. Every proposal is a Trial, kept or dropped."""

    step: int
    index: int
    status: TrialStatus
    text: str
    score: float | None = None
    reason: str | None = None
    raw: str | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Trial:
        keys = cls.__dataclass_fields__.keys()
        return cls(**{k: v for k, v in d.items() if k in keys})


@dataclass
class Result:
    """What an optimization produced. ``best`` is the best solution's text."""

    best: str | None
    best_score: float | None
    history: list[Trial] = field(default_factory=list)
    stop_reason: str = ""
    steps: int = 0
    usage: dict[str, Any] = field(default_factory=dict)
    report: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["history"] = [t.to_json() for t in self.history]
        return d


class Optimizer(Protocol):
    """The one door every optimizer offers, sync and async, with the same keywords.

    Exact signature (OPRO implements it; BPO matches it)::

        def optimize(self, task: Task | str, *, llm: LLM | str, budget: Budget | None = None,
                     run: Run | str | Path | None = None, resume: bool = False,
                     stop_flag: StopFlag | None = None,
                     progress: Callable[[Any], None] | None = None) -> Result
        async def aoptimize(...same arguments...) -> Result

    - ``task``: a :class:`~promptopt.tasks.base.Task` or a registered task name (built with its
      default options; when resuming, with the options the run directory recorded).
    - ``llm``: an LLM or a model spec string (``"local"``, ``"openai:gpt-4o-mini"``, ``"fake:..."``).
    - ``budget``: charged for every call the optimizer makes; share one with the task's scorer for
      one total. ``None``: unlimited (when resuming: the limits the run recorded).
    - ``run``: a :class:`~promptopt.runs.Run`, or a directory to create (or, with ``resume=True``,
      to continue: the journal says what was done, nothing is asked twice).
    - ``stop_flag``: a :class:`~promptopt.runs.StopFlag` polled between steps (Ctrl-C).
    - ``progress``: a callback receiving progress events; the optimizer never prints.

    ``optimize`` is the sync door to ``aoptimize`` (it must not be called from a running loop).
    """

    def optimize(
        self,
        task: Task | str,
        *,
        llm: LLM | str,
        budget: Budget | None = None,
        run: Run | str | Path | None = None,
        resume: bool = False,
        stop_flag: StopFlag | None = None,
        progress: Callable[[Any], None] | None = None,
    ) -> Result: ...

    async def aoptimize(
        self,
        task: Task | str,
        *,
        llm: LLM | str,
        budget: Budget | None = None,
        run: Run | str | Path | None = None,
        resume: bool = False,
        stop_flag: StopFlag | None = None,
        progress: Callable[[Any], None] | None = None,
    ) -> Result: ...


# --------------------------------------------------------------------------- stop conditions


@dataclass
class LoopState:
    """What stop conditions look at after each step: the last committed step, the best so far,
    how many steps in a row did not improve it, and the usage so far."""

    step: int = 0
    best_score: float | None = None
    steps_since_improvement: int = 0
    best: str | None = None
    usage: dict[str, Any] = field(default_factory=dict)


class StopCondition(Protocol):
    """A reason to stop between steps. ``code`` is the short stop reason a Result reports
    (``"steps"``, ``"patience"``, ...); a condition without one reports its class name."""

    def check(self, state: LoopState) -> str | None:
        """A reason to stop now (shown to the user), or None to continue."""
        ...


def reaches(direction: str, score: float, target: float) -> bool:
    """Whether ``score`` is at least as good as ``target`` (within 1e-9) for this direction."""
    return score <= target + 1e-9 if direction == "min" else score >= target - 1e-9


@dataclass(frozen=True)
class MaxSteps:
    steps: int
    code = "steps"

    def check(self, state: LoopState) -> str | None:
        return f"reached {self.steps} steps" if state.step >= self.steps else None


@dataclass(frozen=True)
class Patience:
    """Stop after ``steps`` steps in a row without a better best score."""

    steps: int
    code = "patience"

    def check(self, state: LoopState) -> str | None:
        if state.steps_since_improvement >= self.steps:
            return f"no improvement for {self.steps} steps"
        return None


@dataclass(frozen=True)
class Optimum:
    """Stop when the best score reaches a known optimum (lin-reg's grid optimum, an exact TSP
    length): nothing better can be found, so further steps only spend the budget."""

    optimum: float
    direction: str
    code = "optimum"

    def check(self, state: LoopState) -> str | None:
        if state.best_score is not None and reaches(self.direction, state.best_score, self.optimum):
            return "reached the task's optimum"
        return None


@dataclass(frozen=True)
class StopFileCondition:
    run: Run
    code = "stop_file"

    def check(self, state: LoopState) -> str | None:
        return f"stop file {self.run.stop_file} found" if self.run.stop_requested() else None


@dataclass(frozen=True)
class FlagCondition:
    """Stop when a :class:`StopFlag` is set (Ctrl-C, or a caller's own signal)."""

    flag: StopFlag
    code = "interrupted"

    def check(self, state: LoopState) -> str | None:
        return (self.flag.reason or "stopped") if self.flag.is_set() else None


def first_stop(conditions: Sequence[StopCondition], state: LoopState) -> tuple[str, str] | None:
    """(code, detail) of the first condition that says stop, in order; None to continue."""
    for c in conditions:
        detail = c.check(state)
        if detail:
            return str(getattr(c, "code", type(c).__name__)), detail
    return None
