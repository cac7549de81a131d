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

Optional hooks, read only through the functions at the end of this module (so this docstring is the
whole list of what optimizers and reports read from a task):

- ``opro_defaults: Mapping[str, Any]``: OPRO parameters the task prefers where the caller gives
  none (``steps``, ``per_step``, ``top_k``, ``num_exemplars``, ``max_reasks``: how many extra
  rounds OPRO may ask for proposals that did not parse or were invalid or duplicates).
- ``optimum: float | None``: the best reachable score, when known; OPRO stops there.
- ``proposal_shape() -> ProposalShape | None``: the shape of a valid proposal as a
  :class:`~promptopt.llm.base.Constraint` (GBNF / JSON schema) and the output-format sentence
  that asks for exactly that shape; OPRO decodes under it where the optimizer's backend can.
- ``async afinal_report(best, ranked)``: the async door of ``final_report`` (scoring through an LLM
  runs on the caller's event loop instead of a nested one).
- ``prompts()``: the prompts BPO rewrites, for tasks that have some.
- ``restore(trials)``: the run's committed trials (empty for a new run), given by the optimizer
  before its first step, for a task whose scoring depends on the run so far (racing against the
  best score so far): a resumed run then scores as an uninterrupted one.
- Report hooks. They read a finished run's files only, so they are called on the *class* the task
  is registered with (a ``staticmethod`` or ``classmethod``): ``opro report`` runs without building
  the task (no dataset, no model). A plug-in gets the same report as a built-in one.
  - ``summary(report) -> list[str]``: a few plain lines about ``final_report``'s dict (CLI end).
  - ``report_section(report, search) -> list[str]``: Markdown lines for report.md (``search``: the
    run statistics).
  - ``plots(history, report, out_dir) -> list[tuple[str, Path]]``: PNG files written into
    ``out_dir`` with their titles (``history``: every trial; ``report`` may be ``{}`` for a run
    that has not finished). Import matplotlib through ``promptopt.extras.require``.

Tasks are registered by name: a constant table for the built-ins, and the entry-point group
``promptopt.tasks`` for users' own (``[project.entry-points."promptopt.tasks"] my-task =
"pkg.mod:Factory"``). A factory takes keyword options and returns a Task; register the task class
itself (its constructor's options are the task's options) or a function annotated ``-> TaskClass``
(the report hooks are looked up on that class).
"""

from __future__ import annotations

import importlib
import inspect
import json
import math
import random
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from promptopt.errors import ConfigError, PromptoptError, UnknownNameError
from promptopt.llm.base import Constraint

Direction = Literal["max", "min"]
ENTRY_POINT_GROUP = "promptopt.tasks"
#: The scorer model of a task that scores through an LLM when none is given (the embedded model).
DEFAULT_SCORER = "local"


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


@dataclass(frozen=True)
class ProposalShape:
    """What a valid proposal looks like, for constrained decoding (the ``proposal_shape`` hook).

    ``constraint`` is sent to the backend; ``output_format`` replaces the description's
    ``output_format`` when it is, so the meta-prompt asks for exactly what decoding allows (a
    grammar that only allows ``[w, b]`` must not sit under a sentence asking for reasoning first).
    The task's ``parse`` must accept every output the constraint allows, and still validates it.
    """

    constraint: Constraint
    output_format: str


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
        "promptopt.tasks.linear_regression:LinearRegressionTask",
        "OPRO demo: find (w, b) minimising squared error on noisy y = w*x + b",
    ),
    "tsp": (
        "promptopt.tasks.tsp:TSPTask",
        "OPRO demo: shortest tour through n random points, with baselines and optimality gap",
    ),
    "instructions": (
        "promptopt.tasks.instructions.task:create",
        "instruction search on a dataset (gsm8k, bbh:<task>, multiarith, aqua, jsonl:PATH, HF id)",
    ),
    "ifbench": (
        "promptopt.tasks.ifbench.task:create",
        "instruction search on IFBench: follow verifiable output constraints (fixed splits, metric ifbench)",
    ),
}


@dataclass(frozen=True)
class TaskEntry:
    name: str
    summary: str
    factory: Callable[..., Task]

    def parameters(self) -> dict[str, inspect.Parameter]:
        """The factory's keyword options (``**kwargs`` / ``*args`` left out)."""
        return {
            p.name: p
            for p in inspect.signature(self.factory).parameters.values()
            if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
        }

    def options(self) -> list[tuple[str, str, Any]]:
        """(name, annotation, default) of each keyword option the factory takes."""
        out = []
        for p in self.parameters().values():
            ann = p.annotation if isinstance(p.annotation, str) else getattr(p.annotation, "__name__", "")
            default = None if p.default is inspect.Parameter.empty else p.default
            out.append((p.name, str(ann), default))
        return out

    @property
    def uses_scorer(self) -> bool:
        """Whether the task scores through an LLM (its factory takes ``scorer``)."""
        return "scorer" in self.parameters()

    @property
    def task_class(self) -> type | None:
        """The class the factory builds: the factory itself, or its return annotation."""
        if isinstance(self.factory, type):
            return self.factory
        try:
            ret = typing.get_type_hints(self.factory).get("return")
        except Exception:  # an annotation that does not resolve: no hooks, not an error
            return None
        return ret if isinstance(ret, type) else None

    def check(self, options: Mapping[str, Any]) -> dict[str, inspect.Parameter]:
        """Refuse options the factory does not take (before anything expensive is built)."""
        params = self.parameters()
        unknown = sorted(set(options) - set(params) - {"scorer", "judge_llm"})
        if unknown:
            known = ", ".join(p for p in params if p not in ("scorer", "judge_llm")) or "none"
            raise ConfigError(
                f"task {self.name!r} has no option(s) {', '.join(unknown)}; its options: {known}"
            )
        if "scorer" in options:
            raise ConfigError("the scorer is not a task option; give the scorer model separately")
        if "judge_llm" in options:
            raise ConfigError("the judge is not a task option; give the judge model separately (judge_model)")
        return params

    @property
    def uses_judge(self) -> bool:
        """Whether the task can score through a judge model (its factory takes ``judge_llm``)."""
        return "judge_llm" in self.parameters()

    def wants_judge(self, options: Mapping[str, Any]) -> bool:
        """Whether ``options`` ask to score with a judge model (``judge=...`` or a metric spec that
        judges: ``judge[:MODE]``, ``all:...&judge:MODE``), so the caller opens one (under the run's
        budget and cache) and passes it. The metric registry decides which specs judge."""
        if not self.uses_judge:
            return False
        from promptopt.evaluators.metrics.registry import metric_wants_judge

        return options.get("judge") is not None or metric_wants_judge(options.get("metric"))

    def build(
        self, options: Mapping[str, Any], *, scorer: Any = None, seed: int | None = None, judge: Any = None
    ) -> Task:
        """The task built from ``options`` (strings converted to the declared types, see
        :func:`convert_option`). ``scorer`` (an LLM) is passed when the factory takes one;
        ``seed`` when it takes one and ``options`` does not set it; ``judge`` (an LLM) as
        ``judge_llm`` when given."""
        params = self.check(options)
        kwargs = {k: convert_option(k, v, params[k]) for k, v in options.items()}
        if judge is not None:
            if not self.uses_judge:
                raise ConfigError(f"task {self.name!r} does not score with a judge model")
            kwargs["judge_llm"] = judge
        if "seed" in params and "seed" not in kwargs and seed is not None:
            kwargs["seed"] = seed
        if scorer is not None:
            if not self.uses_scorer:
                raise ConfigError(f"task {self.name!r} does not use a scorer model")
            kwargs["scorer"] = scorer
        try:
            return self.factory(**kwargs)
        except TypeError as exc:  # a wrongly typed option that the factory did not check itself
            raise ConfigError(f"bad option for task {self.name!r}: {exc}") from None


def convert_option(name: str, value: Any, param: inspect.Parameter) -> Any:
    """A string option (``--task-option K=V``) turned into the type the factory declares (or its
    default's type); values that are not strings (typed flags, JSON config files) pass through."""
    if not isinstance(value, str):
        return value
    ann = param.annotation
    ann_text = ann if isinstance(ann, str) else getattr(ann, "__name__", str(ann))
    kinds = [k.strip() for k in str(ann_text).split("|")] if ann is not inspect.Parameter.empty else []
    if not kinds and param.default is not inspect.Parameter.empty and param.default is not None:
        kinds = [type(param.default).__name__]
    if value.strip().lower() in ("none", "null") and ("None" in kinds or param.default is None):
        return None
    for kind in kinds:
        try:
            if kind == "int":
                return int(value)
            if kind == "float":
                number = float(value)
                if not math.isfinite(number):  # nan / inf reach arithmetic as silent garbage
                    raise ConfigError(f"task option {name}={value!r} must be a finite number")
                return number
            if kind == "bool":
                low = value.strip().lower()
                if low in ("1", "true", "yes", "on"):
                    return True
                if low in ("0", "false", "no", "off"):
                    return False
        except ValueError:
            continue
    if kinds and all(k in ("int", "float", "bool") for k in kinds):
        raise ConfigError(f"task option {name}={value!r} is not a valid {' or '.join(kinds)}")
    return value


def _load(path: str) -> Callable[..., Task]:
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


def _plugins() -> list[Any]:
    """The entry points of the ``promptopt.tasks`` group (one place, so tests can replace it)."""
    return list(entry_points(group=ENTRY_POINT_GROUP))


def task_names() -> list[str]:
    plugins = {ep.name for ep in _plugins()}
    return list(BUILTIN_TASKS) + sorted(plugins - set(BUILTIN_TASKS))


def get_task_entry(name: str) -> TaskEntry:
    if name in BUILTIN_TASKS:
        path, summary = BUILTIN_TASKS[name]
        return TaskEntry(name, summary, _load(path))
    for ep in _plugins():
        if ep.name == name:
            factory = ep.load()
            doc = (inspect.getdoc(factory) or "").splitlines()
            return TaskEntry(name, doc[0] if doc else "", factory)
    raise UnknownNameError(f"unknown task {name!r}; known tasks: {', '.join(task_names())}")


def make_task(name: str, **options: Any) -> Task:
    """Build a registered task with keyword options."""
    return get_task_entry(name).factory(**options)


def make_task_from_options(
    name: str, options: Mapping[str, Any], *, scorer: Any = None, seed: int | None = None
) -> Task:
    """Build a registered task from untyped options (a CLI's ``K=V`` strings, a JSON file, a run
    directory's ``task_config``), checked against its factory's signature; see :meth:`TaskEntry.build`."""
    return get_task_entry(name).build(options, scorer=scorer, seed=seed)


# --------------------------------------------------------------------------- optional hooks


def opro_defaults(task: Any) -> dict[str, Any]:
    """The task's preferred OPRO parameters (``{}`` when it has none)."""
    return dict(getattr(task, "opro_defaults", None) or {})


def proposal_shape(task: Any) -> ProposalShape | None:
    """The task's constrained proposal shape, or None when it declares none."""
    hook = getattr(task, "proposal_shape", None)
    shape = hook() if callable(hook) else None
    return shape if isinstance(shape, ProposalShape) else None


def task_optimum(task: Any) -> float | None:
    """The best reachable score, when the task knows it."""
    opt = getattr(task, "optimum", None)
    return None if opt is None else float(opt)


async def final_report_async(
    task: Task, best: Candidate, ranked: Sequence[tuple[Candidate, float]] = ()
) -> dict[str, Any]:
    """The task's final report, through its async door when it has one."""
    afinal = getattr(task, "afinal_report", None)
    if callable(afinal):
        return await afinal(best, ranked)
    return task.final_report(best, ranked)


def restore_task(task: Any, trials: Sequence[Any]) -> None:
    """Hand a run's committed trials to the task's ``restore`` hook, when it has one."""
    restore = getattr(task, "restore", None)
    if callable(restore):
        restore(list(trials))


def report_hooks(task: Any) -> Any:
    """Where a task's report hooks live: a task object or class as is; a name → its registered
    class (None when it is not installed here or has none)."""
    if not isinstance(task, str):
        return task
    try:
        return get_task_entry(task).task_class
    except (PromptoptError, ImportError, AttributeError):
        return None


def pyplot() -> Any:
    """matplotlib's pyplot drawing to files only (no display needed), for ``plots`` hooks; a missing
    matplotlib is one line naming the ``plot`` extra."""
    from promptopt.extras import require

    matplotlib = require("matplotlib", "plot")
    matplotlib.use("Agg")
    return require("matplotlib.pyplot", "plot")


def number(v: Any) -> str:
    """A number for report tables: 4 significant digits, ``—`` for missing."""
    if isinstance(v, float):
        return "nan" if v != v else (f"{v:.4g}" if abs(v) < 1e4 else f"{v:.1f}")
    return "—" if v is None else str(v)


def short_number(v: Any) -> str:
    """A number for one-line summaries: an integer when it is one, else 2 decimals."""
    if isinstance(v, float):
        return str(int(v)) if v.is_integer() else f"{v:.2f}"
    return str(v)


def generic_summary(report: Mapping[str, Any], prefix: str = "") -> list[str]:
    """``key: value`` lines of a report (nested keys dotted; long lists left out)."""
    lines: list[str] = []
    for k, v in report.items():
        if isinstance(v, Mapping):
            lines.extend(generic_summary(v, f"{prefix}{k}."))
        elif not (isinstance(v, list) and len(v) > 12):
            lines.append(f"{prefix}{k}: {short_number(v)}")
    return lines


def summary_lines(task: Any, report: Mapping[str, Any]) -> list[str]:
    """The task's ``summary`` of its final report, or generic lines (also when the hook fails on
    a report of another shape, e.g. one written by an older version)."""
    hook = getattr(report_hooks(task), "summary", None)
    if callable(hook):
        try:
            return list(hook(report))
        except (KeyError, TypeError, ValueError):
            pass
    return generic_summary(report)


def report_section(task: Any, report: Mapping[str, Any], search: Mapping[str, Any]) -> list[str]:
    """Markdown lines about the final report: the task's ``report_section``, else a generic list."""
    hook = getattr(report_hooks(task), "report_section", None)
    if callable(hook):
        try:
            return list(hook(report, search))
        except (KeyError, TypeError, ValueError):
            pass
    lines = []
    for k, v in report.items():
        text = json.dumps(v, default=str) if isinstance(v, list | dict) else number(v)
        if not (isinstance(v, list | dict) and len(text) > 300):
            lines.append(f"- **{k}**: {text}")
    return lines


def answers_section(task: Any, run_dir: Path, report: Mapping[str, Any]) -> list[str]:
    """Markdown lines about the run's kept answers (the task's ``answers_section`` hook: e.g. the
    best candidate's failures next to the baseline's), ``[]`` without one."""
    hook = getattr(report_hooks(task), "answers_section", None)
    if not callable(hook):
        return []
    try:
        return list(hook(Path(run_dir), dict(report)))
    except (KeyError, TypeError, ValueError):
        return []


def bind_task_run(task: Any, run: Any) -> None:
    """Hand the run to the task's ``bind_run`` hook (where it keeps per-example answers), when it
    has one and there is a run directory."""
    bind = getattr(task, "bind_run", None)
    if run is not None and callable(bind):
        bind(run)


def task_plots(
    task: Any, history: Sequence[Any], report: Mapping[str, Any], out_dir: Path
) -> list[tuple[str, Path]]:
    """The task's own plots (``plots`` hook), ``[]`` without one."""
    hook = getattr(report_hooks(task), "plots", None)
    return list(hook(history, report, Path(out_dir))) if callable(hook) else []
