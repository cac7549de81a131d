"""The Task plug-in contract and the task registry.

A Task says what a candidate solution is and how good it is; optimizers know nothing else about
the problem. The contract (GEPA's adapter idea, kept small):

- ``describe()``: the problem statement and output-format text the optimizer's meta-prompt needs.
- ``initial_candidates(rng)``: the starting solutions (OPRO's seed pairs, baseline instructions).
- ``parse(text)``: model output → :class:`Candidate`, or a :class:`Rejected` with a reason. Model
  output is untrusted text: parse it with a regex or a grammar, never ``eval``.
- ``ascore(candidates)``: a batch of scores (higher or lower is better per ``direction``).
  Scoring through an LLM runs concurrently and is cached per (candidate, example).
- ``format_score(score)``: how a score is shown in the meta-prompt (e.g. integer accuracy 0–100).
- ``exemplars(rng, k)``: task examples shown in the meta-prompt (may be empty).
- ``final_report(best, ranked)``: held-out evaluation of the final solution and baselines.
  ``ranked`` is every scored (candidate, score) of the run, best first, so a task can pick among
  the top few on validation; it comes from the run's history, so a resumed run passes the same.
- ``config()``: JSON-able options that rebuild the same task on ``--resume``.

Tasks are registered by name: a constant table for the built-ins, and the entry-point group
``promptopt.tasks`` for users' own (``[project.entry-points."promptopt.tasks"] my-task =
"pkg.mod:factory"``). A factory takes keyword options and returns a Task.
"""

from __future__ import annotations

import importlib
import inspect
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, Literal, Protocol, runtime_checkable

from promptopt.errors import UnknownNameError

Direction = Literal["max", "min"]
ENTRY_POINT_GROUP = "promptopt.tasks"


@dataclass(frozen=True)
class Candidate:
    """A parsed solution. ``text`` is its canonical text (shown in meta-prompts, used to dedupe);
    ``value`` is the structured form the task scores (a (w, b) pair, a tour, an instruction)."""

    text: str
    value: Any = None


@dataclass(frozen=True)
class Rejected:
    """Why a model output did not become a candidate: ``unparseable`` or ``invalid``."""

    status: Literal["unparseable", "invalid"]
    reason: str


@dataclass(frozen=True)
class Scored:
    """The score of one candidate. ``score`` is None when scoring failed (``error`` says why);
    ``info`` carries task-specific detail for the journal (per-example correctness, tour length)."""

    score: float | None
    info: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


@dataclass(frozen=True)
class TaskDescription:
    """Text the meta-prompt is built from. ``solution_name`` names a candidate ("(w, b) pair",
    "trace", "instruction"), ``score_name`` its score ("loss", "length", "accuracy").

    OPRO assembles its meta-prompt from these fields, paragraphs separated by a blank line:
    ``problem``; the top-k past solutions, each rendered with ``entry_template``, worst first and
    best last; ``exemplars_intro`` and the exemplars (if any); ``output_format`` followed (after a
    space) by ``instruction_suffix``."""

    problem: str
    solution_name: str
    score_name: str
    output_format: str
    instruction_suffix: str = ""
    #: How one past solution is shown in the meta-prompt; fields: text, score, solution_name,
    #: score_name. The paper's lin-reg task uses "input:\n{text}\nvalue:\n{score}".
    entry_template: str = "{solution_name}:\n{text}\n{score_name}:\n{score}"
    #: A line shown before the exemplars (e.g. "Below are some problems."); empty for none.
    exemplars_intro: str = ""


@runtime_checkable
class Task(Protocol):
    name: str
    direction: Direction

    def describe(self) -> TaskDescription: ...

    def initial_candidates(self, rng: random.Random) -> list[Candidate]: ...

    def parse(self, text: str) -> Candidate | Rejected: ...

    async def ascore(self, candidates: Sequence[Candidate]) -> list[Scored]: ...

    def format_score(self, score: float) -> str: ...

    def exemplars(self, rng: random.Random, k: int) -> list[str]: ...

    def final_report(
        self, best: Candidate, ranked: Sequence[tuple[Candidate, float]] = ()
    ) -> dict[str, Any]: ...

    def config(self) -> dict[str, Any]: ...


def better(direction: Direction, a: float, b: float) -> bool:
    """Whether score ``a`` is strictly better than ``b`` for this direction."""
    return a > b if direction == "max" else a < b


# --------------------------------------------------------------------------- registry

#: name → (import path of the factory, one-line summary)
BUILTIN_TASKS: Mapping[str, tuple[str, str]] = {
    "linear-regression": (
        "promptopt.tasks.linear_regression:make_task",
        "OPRO demo: find (w, b) minimising squared error on noisy y = w*x + b",
    ),
    "tsp": (
        "promptopt.tasks.tsp:make_task",
        "OPRO demo: shortest tour through n random points, with baselines and optimality gap",
    ),
    "instructions": (
        "promptopt.tasks.instructions.task:make_task",
        "instruction search on a dataset (gsm8k, bbh:<task>, multiarith, aqua, jsonl:PATH, HF id)",
    ),
}


@dataclass(frozen=True)
class TaskEntry:
    name: str
    summary: str
    factory: Callable[..., Task]

    def options(self) -> list[tuple[str, str, Any]]:
        """(name, annotation, default) of each keyword option the factory takes."""
        out = []
        for p in inspect.signature(self.factory).parameters.values():
            if p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
                continue
            ann = p.annotation if isinstance(p.annotation, str) else getattr(p.annotation, "__name__", "")
            default = None if p.default is inspect.Parameter.empty else p.default
            out.append((p.name, str(ann), default))
        return out


def _load(path: str) -> Callable[..., Task]:
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


def task_names() -> list[str]:
    plugins = {ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)}
    return list(BUILTIN_TASKS) + sorted(plugins - set(BUILTIN_TASKS))


def get_task_entry(name: str) -> TaskEntry:
    if name in BUILTIN_TASKS:
        path, summary = BUILTIN_TASKS[name]
        return TaskEntry(name, summary, _load(path))
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == name:
            factory = ep.load()
            doc = (inspect.getdoc(factory) or "").splitlines()
            return TaskEntry(name, doc[0] if doc else "", factory)
    raise UnknownNameError(f"unknown task {name!r}; known tasks: {', '.join(task_names())}")


def make_task(name: str, **options: Any) -> Task:
    """Build a registered task with keyword options."""
    return get_task_entry(name).factory(**options)
