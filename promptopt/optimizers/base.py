"""The one Optimizer interface, its records, and composable stop conditions.

Why a protocol with one method: OPRO and BPO differ in everything but this — take a task, use an
LLM, respect a budget, record into a run, return a Result — so that is all callers depend on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
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
    def optimize(
        self,
        task: Task,
        *,
        llm: LLM,
        budget: Budget | None = None,
        run: Run | None = None,
    ) -> Result: ...


# --------------------------------------------------------------------------- stop conditions


@dataclass
class LoopState:
    """What stop conditions look at after each step."""

    step: int = 0
    best_score: float | None = None
    steps_since_improvement: int = 0


class StopCondition(Protocol):
    def check(self, state: LoopState) -> str | None:
        """A reason to stop now, or None to continue."""
        ...


@dataclass(frozen=True)
class MaxSteps:
    steps: int

    def check(self, state: LoopState) -> str | None:
        return f"reached {self.steps} steps" if state.step >= self.steps else None


@dataclass(frozen=True)
class Patience:
    """Stop after ``steps`` steps in a row without a better best score."""

    steps: int

    def check(self, state: LoopState) -> str | None:
        if state.steps_since_improvement >= self.steps:
            return f"no improvement for {self.steps} steps"
        return None


@dataclass(frozen=True)
class StopFileCondition:
    run: Run

    def check(self, state: LoopState) -> str | None:
        return f"stop file {self.run.stop_file} found" if self.run.stop_requested() else None


@dataclass(frozen=True)
class FlagCondition:
    """Stop when a :class:`StopFlag` is set (Ctrl-C, or a caller's own signal)."""

    flag: StopFlag

    def check(self, state: LoopState) -> str | None:
        return (self.flag.reason or "stopped") if self.flag.is_set() else None


def first_stop(conditions: Sequence[StopCondition], state: LoopState) -> str | None:
    """The first condition that says stop, in order."""
    for c in conditions:
        reason = c.check(state)
        if reason:
            return reason
    return None
