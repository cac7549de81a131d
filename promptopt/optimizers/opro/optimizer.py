"""OPRO (Yang et al. 2024, "Large Language Models as Optimizers"): configuration, the two doors
(``optimize`` / ``aoptimize``) and resuming a run directory.

The loop itself is :mod:`~promptopt.optimizers.opro.loop` (propose → parse → dedupe → score →
commit); the history, seeds and journal replay are :mod:`~promptopt.optimizers.opro.history`;
statistics and the Result are :mod:`~promptopt.optimizers.opro.stats`.

Resuming (:meth:`OPRO.reopen`, :meth:`OPRO.resume`, or ``optimize(..., run=DIR, resume=True)``):
the run directory's config.json names the task and its options, the optimizer and scorer models,
the budget limits and the OPRO parameters. A resumed run rebuilds all of them from there, refuses
what contradicts them (another task, seed, model, or a parameter that shapes the steps), and
accepts a new ``steps`` / ``patience`` / ``stop_at_optimum`` (to extend or end a run).

Constrained proposals (``constrained``, default on): see :mod:`~promptopt.optimizers.opro.loop`.
config.json records ``structured_output``, the mechanism the optimizer's backend applies the
task's proposal shape with (``none`` when off, unsupported, or the task declares no shape), and a
resumed run reopens an OpenAI-compatible optimizer with that declared mechanism.

Stop conditions, checked between steps in this order: the task's optimum (when it knows it and
``stop_at_optimum``), ``steps``, ``patience``, the run's STOP file, the :class:`StopFlag`
(Ctrl-C), the caller's own (``OPRO(stop=[...])``, any :class:`StopCondition`), then the
metric-call budget (``max_metric_calls``: :mod:`promptopt.optimizers.metric_calls`; it may change
on resume, like ``steps``). The budget stops a run from inside a step, through
``BudgetExceededError``.

Proposers (``proposer``, :mod:`~promptopt.optimizers.opro.proposers`): ``opro`` (default: the
paper's meta-prompt, exactly as before) or ``reflective`` (GEPA's reflection and Pareto pool,
:mod:`promptopt.optimizers.reflective`; its ``minibatch_size``). A run keeps its proposer, its
``minibatch_size`` and its ``demos`` on resume. config.json records them in the ``opro`` block
(``max_metric_calls`` and ``demos`` only when set; a run without ``proposer``, from before there
were proposers, used ``opro``). ``demos`` (``--demos K``) is recorded and runs through
:meth:`OPRO._demo_phase` between the search and the final report.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from promptopt.errors import ConfigError, RunDirError, UnknownNameError
from promptopt.llm.base import LLM, run_sync
from promptopt.llm.budget import Budget, charged
from promptopt.llm.credentials import RECORD_KEY as ACCESS_KEY
from promptopt.llm.credentials import ModelAccess
from promptopt.llm.registry import ModelSpec, known_schemes
from promptopt.llm.structured import SERVER_MECHANISMS
from promptopt.optimizers.base import (
    MaxSteps,
    Optimizer,
    Optimum,
    Patience,
    ProgressEvent,
    ProgressFn,
    Result,
    StopCondition,
    open_judge,
    open_judge_model,
    open_llm,
    run_stop_conditions,
    task_run_config,
)
from promptopt.optimizers.opro.demo_phase import run_demo_phase
from promptopt.optimizers.opro.history import derive_seed, history_from_records, read_opro_run, step_rng
from promptopt.optimizers.opro.loop import Loop
from promptopt.optimizers.opro.proposals import constrained_shape
from promptopt.optimizers.opro.proposers import DEFAULT_PROPOSER, get_proposer, proposer_params, refuse_unused
from promptopt.runs import Run, StopFlag, redact
from promptopt.tasks.base import (
    DEFAULT_SCORER,
    Task,
    TaskEntry,
    get_task_entry,
    make_task,
    opro_defaults,
    task_optimum,
)
from promptopt.tracking.base import TrackSpec
from promptopt.tracking.opro import opro_tracking

__all__ = [
    "DEFAULTS",
    "KIND",
    "OPRO",
    "ProgressEvent",
    "ProgressFn",
    "Reopened",
    "build_guarded",
    "derive_seed",
    "history_from_records",
    "open_guard",
    "step_rng",
]

#: The paper's settings where neither the caller nor the task gives one.
DEFAULTS: dict[str, Any] = {
    "steps": 200,
    "per_step": 8,
    "top_k": 20,
    "num_exemplars": 3,
    "max_reasks": 0,
    "temperature": 1.0,
    "max_tokens": 1024,
    "seed": 0,
    "constrained": True,
}
#: Parameters a task's ``opro_defaults`` may set.
TASK_TUNABLE = ("steps", "per_step", "top_k", "num_exemplars", "max_reasks")
#: Parameters that shape every step: a resumed run keeps the run's values.
FIXED_ON_RESUME = (
    *("per_step", "top_k", "num_exemplars", "max_reasks", "temperature", "max_tokens", "seed"),
    "constrained",
)
KIND = "opro"
#: The optimizer model of a run whose config.json names none.
DEFAULT_MODEL = "local"


@dataclass
class OPRO(Optimizer):
    """The OPRO optimizer. ``None`` parameters take the run's values when resuming, then the
    task's ``opro_defaults`` (the paper's per-task settings, e.g. top-k 10 for TSP), then
    :data:`DEFAULTS`. ``stop``: extra stop conditions, checked after the built-in ones.
    ``constrained``: decode proposals under the task's proposal shape where the optimizer's
    backend can (default True; see :mod:`~promptopt.optimizers.opro.loop`). ``proposer``:
    ``"opro"`` (default) or ``"reflective"`` (with ``minibatch_size``, default 3);
    ``max_metric_calls``: stop before a step that could spend more metric calls (GEPA's unit: one
    candidate on one example); ``demos``: few-shot demonstrations for the result (``--demos K``);
    ``track``: an experiment tracker for the run (``"mlflow"``, ``"mlflow:sqlite:///mlflow.db"`` or a
    :class:`~promptopt.tracking.Tracker`; :mod:`promptopt.tracking.opro`); a resumed run that was
    tracked continues its tracker's run without it.

    >>> result = OPRO(steps=5, seed=0).optimize(task, llm=build_llm("local"))
    >>> result.best, result.best_score, result.history
    """

    steps: int | None = None
    per_step: int | None = None
    top_k: int | None = None
    num_exemplars: int | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    patience: int | None = None
    seed: int | None = None
    stop_at_optimum: bool = True
    max_reasks: int | None = None
    constrained: bool | None = None
    proposer: str | None = None
    minibatch_size: int | None = None
    max_metric_calls: int | None = None
    demos: int | None = None
    track: TrackSpec | None = field(default=None, repr=False, compare=False)
    stop: Sequence[StopCondition] = field(default=(), repr=False, compare=False)
    progress: ProgressFn | None = field(default=None, repr=False, compare=False)

    # -- configuration
    def params(self, task: Task | None = None, saved: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The resolved, JSON-able parameters (what config.json stores). ``saved``: a run's
        config.json when continuing it (see the module docstring)."""
        run_params = _saved_params(saved)
        given = {k: getattr(self, k) for k in ("proposer", "minibatch_size", "max_metric_calls", "demos")}
        pname, prop, extra = proposer_params(given, run_params)
        task_defaults = opro_defaults(task) if task is not None else {}
        out: dict[str, Any] = {}
        for name in (*TASK_TUNABLE, "temperature", "max_tokens", "seed", "constrained"):
            mine = getattr(self, name)
            if mine is not None and name in FIXED_ON_RESUME and run_params.get(name, mine) != mine:
                raise RunDirError(
                    f"{name} {mine!r} differs from the run's {run_params[name]!r} (the run was "
                    f"started with seed/parameters that a resumed run keeps)"
                )
            refuse_unused(prop, pname, name, mine)
            sources = (run_params, prop.fixed, prop.defaults, task_defaults, DEFAULTS)
            for source in ({name: mine} if mine is not None else {}, *sources):
                if source.get(name) is not None:
                    out[name] = source[name]
                    break
        out["patience"] = self.patience if self.patience is not None else run_params.get("patience")
        out["stop_at_optimum"] = self.stop_at_optimum
        out.update(extra)
        _validate(out)
        if task is not None:  # a task the proposer cannot run on, before anything is written
            prop.check(task, out)
        return out

    def run_config(self, task: Task, llm: LLM | None = None, **extra: Any) -> dict[str, Any]:
        """A config.json payload for a run of this optimizer on ``task`` (no secrets); with the
        optimizer ``llm``, the ``structured_output`` mechanism its proposals are decoded under."""
        p = self.params(task)
        cfg = {**task_run_config(KIND, task, p["seed"]), "opro": p}
        if llm is not None:
            cfg["structured_output"] = constrained_shape(bool(p["constrained"]), task, llm)[1]
        return {**cfg, **extra}

    def stop_conditions(
        self, p: Mapping[str, Any], task: Task, run: Run | None, flag: StopFlag | None
    ) -> list[StopCondition]:
        """The conditions checked between steps, in order (see the module docstring)."""
        conds: list[StopCondition] = []
        optimum = task_optimum(task)
        if p["stop_at_optimum"] and optimum is not None:
            conds.append(Optimum(optimum, task.direction))
        conds.append(MaxSteps(p["steps"]))
        if p["patience"]:
            conds.append(Patience(p["patience"]))
        return [*conds, *run_stop_conditions(run, flag), *self.stop]

    # -- public entry points (``optimize``, the sync door, is Optimizer's)
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
    ) -> Result:
        """Run OPRO on ``task`` (a Task or a registered name) with ``llm`` (an LLM or a model spec)
        as the optimizer. ``run``: a Run, or a directory to create (or continue, with ``resume``:
        then ``task`` and ``llm`` may be left out, and a task name is rebuilt with the run's
        options). ``budget`` is charged for every optimizer call (share it with the task's scorer
        for one total). :meth:`optimize` is the sync door (same arguments)."""
        if resume and run is not None and not isinstance(run, Run):
            r = self.reopen(run, task=task, llm=llm, budget=budget)
            try:
                return await r.opro._execute(r.task, r.llm, r.budget, r.run, stop_flag, progress)
            finally:
                r.run.close()
        if task is None or llm is None:
            raise ConfigError("optimize needs a task and an llm (both may be left out only when resuming)")
        if isinstance(task, str):  # a registered task name, with its default options
            task = make_task(task)
        budget = budget if budget is not None else Budget()
        llm = open_llm(llm, budget)
        if isinstance(run, Run) or run is None:
            return await self._execute(task, llm, budget, run, stop_flag, progress)
        run_obj = Run.create(Path(run), self.run_config(task, llm, optimizer_model=getattr(llm, "name", "")))
        try:
            return await self._execute(task, llm, budget, run_obj, stop_flag, progress)
        finally:
            run_obj.close()

    def resume(
        self,
        run_dir: str | Path,
        *,
        task: Task | str | None = None,
        llm: LLM | str | None = None,
        scorer: LLM | str | None = None,
        budget: Budget | None = None,
        stop_flag: StopFlag | None = None,
        progress: ProgressFn | None = None,
        access: ModelAccess | None = None,
    ) -> Result:
        """Continue the run in ``run_dir`` with everything it recorded (see :meth:`reopen`)."""
        r = self.reopen(run_dir, task=task, llm=llm, scorer=scorer, budget=budget, access=access)
        try:
            return r.opro.optimize(
                r.task, llm=r.llm, budget=r.budget, run=r.run, stop_flag=stop_flag, progress=progress
            )
        finally:
            r.run.close()

    def reopen(
        self,
        run_dir: str | Path,
        *,
        task: Task | str | None = None,
        llm: LLM | str | None = None,
        scorer: LLM | str | None = None,
        budget: Budget | None = None,
        access: ModelAccess | None = None,
    ) -> Reopened:
        """Everything needed to continue the run in ``run_dir``, rebuilt from its config.json, and
        the run opened for appending. Given values are checked against the run's: a task (name)
        or model spec that differs is refused; ``None`` takes the run's. A task name is rebuilt with
        the run's task options; a scorer is built from the run's scorer spec unless an LLM is
        given, a judge and a rewrite guard (``guard_model``) from theirs, all three with the
        scorer's key variable and the run's headers; ``budget`` ``None`` gets the run's limits.
        This OPRO's ``steps`` / ``patience`` / ``stop_at_optimum`` apply; its other parameters must
        agree with the run's. ``access``: the headers the run was started with (their values are
        never stored) and any key variable to use instead of the recorded one
        (:meth:`ModelAccess.resumed`)."""
        path = Path(run_dir)
        cfg = read_opro_run(path, to_resume=True).config  # format and shape, before anything is loaded
        for label, given, key in (("task", task, "task"), ("optimizer model", llm, "optimizer_model"),
                                  ("scorer model", scorer, "scorer_model")):  # fmt: skip
            if isinstance(given, str) and cfg.get(key) is not None and given != cfg[key]:
                raise RunDirError(
                    f"{label} {redact(given)!r} differs from the run's {redact(cfg[key])!r}; a resumed run keeps it"
                )
        budget = budget if budget is not None else Budget.from_limits(cfg.get("budget"))
        access = (access or ModelAccess()).resumed(cfg.get(ACCESS_KEY))
        if not isinstance(task, str) and task is not None:
            task_obj = task
        else:
            task_obj = _rebuild_task(cfg, scorer, budget, access)
        pinned = dataclasses.replace(self, **_without_none(self.params(task_obj, cfg)))
        check_run_config(cfg, task_obj.name, path)
        opt = (
            llm
            if llm is not None and not isinstance(llm, str)
            else _reopen_optimizer(cfg.get("optimizer_model") or DEFAULT_MODEL, cfg, budget, access)
        )
        return Reopened(pinned, task_obj, charged(opt, budget), budget, Run.resume(path), cfg)

    async def _execute(
        self,
        task: Task,
        llm: LLM,
        budget: Budget,
        run: Run | None,
        flag: StopFlag | None,
        progress: ProgressFn | None,
    ) -> Result:
        saved = run.config if run is not None else None
        if saved:
            check_run_config(saved, task.name, run.path)  # type: ignore[union-attr]
        p = self.params(task, saved)
        make_loop = get_proposer(p.get("proposer", DEFAULT_PROPOSER)).loop
        with opro_tracking(self.track, run, p) as tracked:  # inactive unless tracked (promptopt.tracking)
            loop = make_loop(p, task, charged(llm, budget), budget, run, self.stop_conditions(p, task, run, flag),
                             tracked.progress(progress or self.progress))  # fmt: skip
            stop = await loop.search()
            await self._demo_phase(loop, p)
            return tracked.finished(await loop.finish(*stop))

    async def _demo_phase(self, loop: Loop, p: Mapping[str, Any]) -> None:
        """``--demos K``: few-shot demonstrations searched with the best instructions found, between
        the search and the final report (:mod:`promptopt.optimizers.opro.demo_phase`)."""
        if p.get("demos"):
            await run_demo_phase(loop, p, self.seed)


@dataclass
class Reopened:
    """A run directory ready to continue: ``opro`` has the run's parameters, ``task`` its options,
    ``llm`` its optimizer model, ``budget`` its limits and spent usage (restored by the loop from
    the journal), ``run`` is open for appending (close it when done)."""

    opro: OPRO
    task: Task
    llm: LLM
    budget: Budget
    run: Run
    config: dict[str, Any]


def _reopen_optimizer(spec: str, cfg: Mapping[str, Any], budget: Budget, access: ModelAccess) -> LLM:
    """The run's optimizer model, with its key variable and the run's headers; an OpenAI-compatible
    one with the mechanism the run declared for it (a server's mechanism is never guessed, so it
    must come from the run)."""
    declared = cfg.get("structured_output")
    options = access.options(spec, "optimizer")
    if declared in SERVER_MECHANISMS and declared != "none" and ModelSpec.parse(spec).scheme == "openai":
        options["structured_output"] = declared
    return open_llm(spec, budget, **options)


def check_run_config(cfg: Mapping[str, Any], task_name: str, where: Path) -> None:
    """Refuse to continue a run of another kind or task (the seed is checked by ``params``)."""
    if cfg.get("kind") not in (None, KIND):
        raise RunDirError(f"{where} does not hold an OPRO run")
    if cfg.get("task") not in (None, task_name):
        raise RunDirError(f"{where} holds a run of task {cfg.get('task')!r}, not {task_name!r}")


def _saved_params(cfg: Mapping[str, Any] | None) -> dict[str, Any]:
    if not cfg:
        return {}
    out = dict(cfg.get("opro") or {})
    if "opro" in cfg:
        out.setdefault("max_reasks", 0)  # runs from before re-asking never re-asked
        out.setdefault("constrained", False)  # nor did runs from before constrained decoding
        out.setdefault("proposer", DEFAULT_PROPOSER)  # a run without one used OPRO's own
        out.setdefault("demos", None)  # and had no demonstrations
    if cfg.get("seed") is not None:
        out.setdefault("seed", cfg["seed"])
    return out


def _validate(p: dict[str, Any]) -> None:
    for name in ("steps", "per_step", "max_tokens"):
        if isinstance(p[name], bool) or not isinstance(p[name], int) or p[name] < 1:
            raise ConfigError(f"{name} must be a positive integer, got {p[name]!r}")
    for name in ("top_k", "num_exemplars", "max_reasks"):
        if isinstance(p[name], bool) or not isinstance(p[name], int) or p[name] < 0:
            raise ConfigError(f"{name} must be a non-negative integer, got {p[name]!r}")
    if p["patience"] is not None and p["patience"] < 1:
        raise ConfigError(f"patience must be a positive integer, got {p['patience']}")
    if not 0.0 <= float(p["temperature"]) <= 2.0:
        raise ConfigError(f"temperature must be in [0, 2], got {p['temperature']}")
    if not isinstance(p["constrained"], bool):
        raise ConfigError(f"constrained must be true or false, got {p['constrained']!r}")
    if isinstance(p["seed"], bool) or not isinstance(p["seed"], int):
        raise ConfigError(f"seed must be an integer, got {p['seed']!r}")


def _without_none(p: Mapping[str, Any]) -> dict[str, Any]:
    names = {f.name for f in dataclasses.fields(OPRO)}
    return {k: v for k, v in p.items() if k in names and v is not None}


def _rebuild_task(
    cfg: Mapping[str, Any], scorer: LLM | str | None, budget: Budget, access: ModelAccess
) -> Task:
    """The run's task with the run's options; its scorer, judge and rewrite guard from the run's
    specs, under ``budget``, with the scorer's key variable and the run's headers."""
    name = cfg.get("task")
    if not name:
        raise RunDirError("the run's config.json names no task")
    entry = get_task_entry(str(name))
    options = dict(cfg.get("task_config") or {})
    _check_recorded_guard(options)
    scorer_llm, scorer_spec = None, None
    if entry.uses_scorer:
        spec = scorer if scorer is not None else cfg.get("scorer_model") or DEFAULT_SCORER
        scorer_spec = spec if isinstance(spec, str) else None
        scorer_llm = (
            open_llm(spec, budget, cache_policy="deterministic", **access.options(spec, "scorer"))
            if isinstance(spec, str)
            else spec
        )
    judge_llm = open_judge(entry, options, budget, scorer=scorer_llm, scorer_spec=scorer_spec, access=access)
    guard = open_guard(options, budget, access, scorer=scorer_llm, scorer_spec=scorer_spec)
    seed = cfg.get("seed")
    return build_guarded(
        entry, options, guard, scorer=scorer_llm, seed=None if seed is None else int(seed), judge=judge_llm
    )


def open_guard(
    options: Mapping[str, Any],
    budget: Budget,
    access: ModelAccess,
    *,
    scorer: LLM | None,
    scorer_spec: str | None,
) -> LLM | None:
    """The rewrite guard's judge of ``options["guard_model"]`` (None without one), opened as
    :func:`~promptopt.optimizers.base.open_judge` opens a judge: under ``budget``, with
    deterministic caching (a resumed run asks again from the cache), with the scorer's key variable
    and the run's headers when it is an HTTP model; the scorer itself when the spec is the
    scorer's (one model loaded). Why here and not in the task: the task opens a bare spec with no
    access (``rewrite_splits``), which reaches no keyed server; a run knows its access."""
    spec = options.get("guard_model")
    if spec is None or options.get("guard_llm") is not None:
        return None
    if scorer is not None and spec == scorer_spec:
        return scorer
    return open_judge_model(spec, budget, access)


def build_guarded(
    entry: TaskEntry,
    options: Mapping[str, Any],
    guard: LLM | None,
    *,
    scorer: LLM | None,
    seed: int | None,
    judge: LLM | None,
) -> Task:
    """``entry.build`` with ``guard`` (from :func:`open_guard`) given to the task as ``guard_llm``.
    The guard is asked only while the task rewrites its questions, so one that is not the scorer
    is closed as soon as the task is built (or fails to be)."""
    try:
        return entry.build(
            {**options, "guard_llm": guard} if guard is not None else dict(options),
            scorer=scorer,
            seed=seed,
            judge=judge,
        )
    finally:
        if guard is not None and guard is not scorer:
            run_sync(guard.aclose())


def _check_recorded_guard(options: Mapping[str, Any]) -> None:
    """Refuse, before any model is loaded, a recorded ``guard_model`` that is no model spec: a run
    started with an LLM object as ``guard_llm`` records its name only (all a run can record of one),
    which cannot be opened again; the caller must pass the task rebuilt with that object."""
    spec = options.get("guard_model")
    if spec is None or options.get("guard_llm") is not None:
        return
    try:
        known = isinstance(spec, str) and ModelSpec.parse(spec).scheme in known_schemes()
    except UnknownNameError:
        known = False
    if not known:
        raise ConfigError(
            f"the run's guard_model {spec!r} is not a model spec (a guard_llm object is recorded by name): "
            "resume it in Python with task= the task built again with that guard_llm"
        )
