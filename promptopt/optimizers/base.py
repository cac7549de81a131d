"""The one Optimizer interface, its records, and composable stop conditions.

Why one protocol (a sync and an async door with the same keywords): OPRO and BPO differ in
everything but this — take a task, use an LLM, respect a budget, record into a run, return a
Result — so that is all callers depend on. What both need around it (the progress event, the
config.json head, opening a model spec, the STOP file and Ctrl-C stops) is here once too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from promptopt.errors import ConfigError
from promptopt.llm.base import run_sync
from promptopt.llm.registry import takes_credentials

if TYPE_CHECKING:
    from pathlib import Path

    from promptopt.llm.base import LLM
    from promptopt.llm.budget import Budget
    from promptopt.llm.credentials import ModelAccess
    from promptopt.runs import Run, StopFlag
    from promptopt.tasks.base import Task

#: ``rejected``: a reflective child that did not beat its parent on the minibatch (never scored in full)
TrialStatus = Literal["scored", "unparseable", "invalid", "duplicate", "failed", "initial", "rejected"]


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


@dataclass(frozen=True)
class ProgressEvent:
    """What an optimizer reports to a progress callback after each step (the CLI draws it; an
    optimizer never prints). One class for OPRO and BPO, so one callback can draw both."""

    kind: str  # "step_started" | "step_done"
    step: int
    steps: int
    best: str | None
    best_score: float | None
    usage: dict[str, Any]
    kept: int = 0
    dropped: int = 0
    improved: bool = False


ProgressFn = Callable[[ProgressEvent], None]


class Optimizer(Protocol):
    """The one door every optimizer offers, sync and async, with the same keywords.

    An optimizer subclasses this and implements :meth:`aoptimize`; :meth:`optimize`, the sync
    door, is written once here (it must not be called from a running loop).

    - ``task``: a :class:`~promptopt.tasks.base.Task` or a registered task name (built with its
      default options; when resuming, with the options the run directory recorded). OPRO lets
      ``task`` and ``llm`` be left out when resuming (the run names them); BPO needs both.
    - ``llm``: an LLM or a model spec string (``"local"``, ``"openai:gpt-4o-mini"``, ``"fake:..."``).
    - ``budget``: charged for every call the optimizer makes; share one with the task's scorer for
      one total. ``None``: unlimited (when resuming: the limits the run recorded).
    - ``run``: a :class:`~promptopt.runs.Run`, or a directory to create (or, with ``resume=True``,
      to continue: the journal says what was done, nothing is asked twice).
    - ``stop_flag``: a :class:`~promptopt.runs.StopFlag` polled between steps (Ctrl-C).
    - ``progress``: a callback receiving :class:`ProgressEvent` objects; the optimizer never prints.
    """

    def optimize(
        self,
        task: Task | str | None = None,
        *,
        llm: LLM | str | None = None,
        budget: Budget | None = None,
        run: Run | str | Path | None = None,
        resume: bool = False,
        stop_flag: StopFlag | None = None,
        progress: ProgressFn | None = None,
    ) -> Result:
        """Sync door to :meth:`aoptimize` (same arguments)."""
        return run_sync(
            self.aoptimize(
                task, llm=llm, budget=budget, run=run, resume=resume, stop_flag=stop_flag, progress=progress
            )
        )

    async def aoptimize(
        self,
        task: Task | str | None = None,
        *,
        llm: LLM | str | None = None,
        budget: Budget | None = None,
        run: Run | str | Path | None = None,
        resume: bool = False,
        stop_flag: StopFlag | None = None,
        progress: ProgressFn | None = None,
    ) -> Result: ...


def task_run_config(kind: str, task: Task, seed: Any) -> dict[str, Any]:
    """The part of a run's config.json every optimizer writes, in this key order: what ran on
    which task with which options (``--resume`` rebuilds the task from ``task_config``)."""
    return {
        "kind": kind,
        "task": task.name,
        "direction": task.direction,
        "task_config": task.config() if callable(getattr(task, "config", None)) else {},
        "seed": seed,
    }


def open_llm(llm: LLM | str, budget: Budget, cache_policy: str = "all", **options: Any) -> LLM:
    """An LLM from a model spec (an optimizer's requests are all cached, so a rerun replays for
    free; a scorer caches deterministic requests), charging ``budget``; an LLM as it is.
    ``options`` go to ``build_llm`` (e.g. ``api_key_env``, ``headers``)."""
    if not isinstance(llm, str):
        return llm
    from promptopt.llm.factory import build_llm

    return build_llm(llm, budget=budget, cache_policy=cache_policy, **options)  # type: ignore[arg-type]


def open_judge(
    entry: Any,
    options: Mapping[str, Any],
    budget: Budget,
    *,
    scorer: LLM | None,
    scorer_spec: str | None,
    access: ModelAccess | None = None,
) -> LLM | None:
    """The judge model a task's ``options`` ask for (``entry.wants_judge``): its own ``judge_model``
    spec opened under ``budget`` with deterministic caching, or the ``scorer`` itself when no spec is
    given or it is the scorer's (one model loaded, one cache); None when no judge is asked for. A
    ``judge_model`` without a judge is a ConfigError. ``access``: a
    :class:`~promptopt.llm.credentials.ModelAccess` whose scorer key and headers the judge uses."""
    judge_spec = options.get("judge_model")
    if not entry.wants_judge(options):
        if judge_spec is not None:
            raise ConfigError(
                "--judge-model needs a judge: --judge rubric|pairwise, or a judge metric "
                "(--metric judge, judge:responsive, or all:...&judge:responsive)"
            )
        return None
    if judge_spec is None or judge_spec == scorer_spec:
        return scorer
    return open_judge_model(judge_spec, budget, access)


def open_judge_model(spec: str, budget: Budget, access: ModelAccess | None) -> LLM:
    """A model that judges the scorer's work (a judge, the rewrite guard) opened from ``spec``:
    under ``budget``, with deterministic caching (a resumed run asks again from the cache), with the
    scorer's key variable and headers from ``access``. Those go to an HTTP model only: a local judge
    beside an HTTP scorer with --scorer-api-key-env is a valid setup, not an error."""
    extra = access.options(spec, "scorer") if access is not None and takes_credentials(spec) else {}
    return open_llm(spec, budget, cache_policy="deterministic", **extra)


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


def run_stop_conditions(run: Run | None, flag: StopFlag | None) -> list[StopCondition]:
    """The stops every run honours, in order: its STOP file, then the :class:`StopFlag`."""
    conds: list[StopCondition] = []
    if run is not None:
        conds.append(StopFileCondition(run))
    if flag is not None:
        conds.append(FlagCondition(flag))
    return conds


def first_stop(conditions: Sequence[StopCondition], state: LoopState) -> tuple[str, str] | None:
    """(code, detail) of the first condition that says stop, in order; None to continue."""
    for c in conditions:
        detail = c.check(state)
        if detail:
            return str(getattr(c, "code", type(c).__name__)), detail
    return None
