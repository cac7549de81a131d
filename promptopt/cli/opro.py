"""`promptopt opro`: run OPRO on a task (`run`) and turn a run directory into a report (`report`).

Only parsing and printing live here: the loop is :class:`promptopt.optimizers.opro.optimizer.OPRO`
(``OPRO.reopen`` for ``--resume``), typed task options come from
:func:`promptopt.tasks.base.TaskEntry.build`, and each task summarises its own final report.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer

from promptopt.cli.common import (
    DEFAULT_MODEL,
    HEADER_HELP,
    console,
    err_console,
    load_config_file,
    model_access,
    open_model,
    positive,
)
from promptopt.errors import ConfigError, PromptoptError
from promptopt.llm.base import LLM, Request, run_sync
from promptopt.llm.budget import (
    COST_PARTS,
    DEFAULT_PRICES,
    IN_PROCESS_SCHEMES,
    Budget,
    Projection,
    parse_prices,
    prices_from_json,
    project,
    project_items,
)
from promptopt.llm.credentials import RECORD_KEY as ACCESS_KEY
from promptopt.llm.credentials import ModelAccess
from promptopt.llm.registry import ModelSpec
from promptopt.llm.structured import check_server_mechanism
from promptopt.optimizers.base import Result, open_judge
from promptopt.optimizers.metric_calls import search_share
from promptopt.optimizers.opro.final_budget import planned_candidates, task_cost_items
from promptopt.optimizers.opro.meta_prompt import PastSolution, build_meta_prompt
from promptopt.optimizers.opro.optimizer import OPRO, ProgressEvent, build_guarded, open_guard, step_rng
from promptopt.optimizers.opro.proposers import DEFAULT_PROPOSER, PROPOSERS
from promptopt.optimizers.opro.stats import validation_warning
from promptopt.optimizers.reflective.reflection import (
    MAX_FIELD_CHARS,
    Observation,
    reflection_prompt,
    reflection_request,
)
from promptopt.runs import Run, StopFlag, check_run_dir
from promptopt.tasks.base import Task, TaskEntry, convert_option, get_task_entry, summary_lines
from promptopt.tasks.instructions.rewrite import check_guard, check_keep_original
from promptopt.tracking.base import parse_track

app = typer.Typer(
    help="OPRO: an optimizer LLM proposes solutions from past scored ones.", no_args_is_help=True
)


def _parse_task_options(pairs: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise ConfigError(f"--task-option expects KEY=VALUE, got {pair!r}")
        out[key] = value
    return out


# --------------------------------------------------------------------------- printing


class _Progress:
    """The live display: step, best so far, calls and tokens spent."""

    def __init__(self, task_name: str, total: int, cached: Any = None) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn

        self.cached = cached  # the optimizer's CachedLLM: its hits cost nothing and are shown apart
        self.con = err_console()
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn(f"[bold]opro {task_name}[/]"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.description}"),
            console=self.con,
            transient=False,
        )
        self.bar = self.progress.add_task("starting", total=total)
        self.live = self.con.is_terminal

    def __enter__(self) -> _Progress:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(None, None, None)

    def __call__(self, ev: ProgressEvent) -> None:
        best = "—" if ev.best_score is None else f"{ev.best_score:.4g}"
        u = ev.usage
        tokens = u.get("prompt_tokens", 0) + u.get("completion_tokens", 0)
        hits = int(getattr(self.cached, "hits", 0) or 0) + int(u.get("cached_calls", 0) or 0)
        cached = f" (+{hits} from cache)" if hits else ""
        desc = f"best {best} | calls {u.get('calls', 0)}{cached} | tokens {tokens}"
        if ev.kind == "step_started":
            desc = f"step {ev.step} running… | {desc}"
        self.progress.update(
            self.bar, completed=max(ev.step - (ev.kind == "step_started"), 0), description=desc
        )
        if ev.kind == "step_done" and not self.live:
            mark = " (improved)" if ev.improved else ""
            self.con.print(f"step {ev.step}/{ev.steps}: kept {ev.kept}, dropped {ev.dropped}{mark} | {desc}")


# --------------------------------------------------------------------------- run


def _default_run_dir(task: str) -> Path:
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{task}-{stamp}"


def _projection_line(opro_params: dict[str, Any], task: Task, model: LLM, budget: Budget) -> str:
    """What the whole run may cost: the optimizer's calls (a meta-prompt filled with the starting
    solutions, ``per_step`` × ``steps``) plus what the task projects for the candidates
    (``cost_projection(candidates, part=...)`` for each of its ``cost_parts``: scorer, judge, the
    demo phase, the final report...), where candidates = initial + steps × per_step. Says when the
    budget cannot hold the final report."""
    p = opro_params
    desc = task.describe()
    start = task.initial_candidates(step_rng(p["seed"], 0))
    entries = [PastSolution(c.text, 0.0, i) for i, c in enumerate(start)]
    while entries and len(entries) < p["top_k"]:
        entries.append(PastSolution(entries[len(entries) % len(start)].text, 0.0, len(entries)))
    meta = build_meta_prompt(desc, entries[: p["top_k"]], task.format_score)
    req = Request.chat(meta, temperature=p["temperature"], max_tokens=p["max_tokens"])
    optimizer = project(model.name, [req] * p["per_step"], repeat=p["steps"], budget=budget)
    names = _cost_parts(task)
    if names is None:
        line = Projection.total([("optimizer", optimizer)]).describe()
        return line + " (the optimizer's calls; the task projects none of its own)"
    parts = _task_parts(task, planned_candidates(task, p), p, budget, names)
    return _describe([("optimizer", optimizer), *parts], budget)


def _cost_parts(task: Task) -> tuple[str, ...] | None:
    """The parts the task projects (its ``cost_parts``, else the default ones), or None when it has
    no ``cost_projection`` hook. The one place both projection lines ask, so they agree on whether
    the task projects anything and on which parts."""
    if not callable(getattr(task, "cost_projection", None)):
        return None
    return tuple(getattr(task, "cost_parts", COST_PARTS))


def _task_parts(
    task: Task, candidates: int, p: dict[str, Any], budget: Budget, names: Sequence[str]
) -> list[tuple[str, Projection]]:
    """Each of the cost parts ``names`` (from :func:`_cost_parts`, so the task has the hook) for a
    run scoring ``candidates``, with the run's demo phase (``--demos``), priced."""
    run = {"demos": p.get("demos"), "max_metric_calls": p.get("max_metric_calls")}
    return [
        (name, project_items(task_cost_items(task, candidates, name, **run) or [], budget)) for name in names
    ]


def _describe(parts: Sequence[tuple[str, Projection]], budget: Budget) -> str:
    """The total of ``parts`` (the optimizer's, and each of the task's that asks anything), then
    whether the budget can hold the final report: a run whose final report the budget refuses ends
    without its test evaluation."""
    line = Projection.total([(label, x) for label, x in parts if label == "optimizer" or x.calls]).describe()
    final = dict(parts).get("final")
    if (
        final is not None
        and budget.has_limits()
        and final.calls
        and not budget.fits(final.calls, final.tokens, final.dollars or 0.0)
    ):
        line += (
            f"; the budget cannot hold the final report's projected {final.calls:,} calls / "
            f"{final.tokens:,} tokens, so its test evaluation may be refused"
        )
    return line


#: the task's cost parts that do not depend on how candidates are proposed: the demo phase and the
#: final report (the others are the search's answers to training examples, their judging and turns)
_AFTER_SEARCH = ("demos", "final")


def _reflective_projection_line(p: dict[str, Any], task: Task, model: LLM, budget: Budget) -> str:
    """What a reflective run may spend, in metric calls (its unit): the starting instructions on the
    validation split, then per iteration the parent and the child on a minibatch and an accepted
    child on the validation split; one reflection call per iteration. Then, as for OPRO's line, in
    requests: the search's parts of the task's projection for one pass over the training split,
    scaled to those metric calls (each an answer, its judging and extraction turn; a pairwise judge's
    baseline answer is counted with each, an upper bound), and the task's own projection of the demo
    phase and the final report (the hold's), with the final-report check."""
    splits = getattr(task, "splits", None)
    val, train = len(getattr(splits, "val", ())), len(getattr(splits, "train", ()))
    mb = min(int(p["minibatch_size"]), train)
    first = len(task.initial_candidates(step_rng(p["seed"], 0))) * val
    most = first + p["steps"] * (2 * mb + val)
    limit = search_share(p.get("max_metric_calls"), p.get("demos"))  # the demo phase gets the rest
    capped = f", capped at {limit:,} by --budget-metric-calls" if limit is not None and limit < most else ""
    head = (
        f"projected (reflective): at most {most:,} metric calls ({first:,} for the starting instructions, "
        f"then up to {p['steps']:,} iterations × (2 × {mb} minibatch + {val} validation)){capped}"
    )
    names = _cost_parts(task)
    if names is None or not train:
        test = len(getattr(splits, "test", ()))
        return (
            f"{head}; at most {p['steps']:,} reflection calls to {model.name}; the final report (the "
            f"validation pick, then {test:,} test examples for it and each baseline) comes on top"
        )
    after = _task_parts(
        task, planned_candidates(task, p), p, budget, [n for n in names if n in _AFTER_SEARCH]
    )
    one_pass = _task_parts(task, 1, p, budget, [n for n in names if n not in _AFTER_SEARCH])
    calls = most if limit is None else min(most, limit)
    reflections = project(model.name, [_reflection_stand_in(task, p, mb)], repeat=p["steps"], budget=budget)
    search = [(name, _scaled(x, calls, train)) for name, x in one_pass]
    in_requests = _describe([("optimizer", reflections), *search, *after], budget)
    return f"{head}; as requests, {in_requests.removeprefix('projected: ')}"


def _scaled(x: Projection, num: int, den: int) -> Projection:
    """``x`` × ``num`` / ``den``, counts rounded up: one pass over ``den`` training examples made
    ``num`` metric calls' worth."""

    def up(n: int) -> int:
        return -(-n * num // den)

    dollars = None if x.dollars is None else x.dollars * num / den
    return Projection(up(x.calls), up(x.prompt_tokens), up(x.completion_tokens), dollars)


def _reflection_stand_in(task: Task, p: dict[str, Any], mb: int) -> Request:
    """A reflection request as long as the projection can know: the longest starting instruction,
    the ``mb`` longest training inputs with their gold answers and responses as long as a reflection
    shows (:data:`MAX_FIELD_CHARS`); the metric's feedback is not known before the run."""
    start = max((c.text for c in task.initial_candidates(step_rng(p["seed"], 0))), key=len, default="")
    train = sorted(getattr(task, "splits").train, key=lambda ex: len(str(ex.input)), reverse=True)  # noqa: B009
    shown = [
        Observation(
            str(ex.input), "x" * MAX_FIELD_CHARS, None if ex.target is None else str(ex.target), 0.0, None
        )
        for ex in train[:mb]
    ]
    return reflection_request(reflection_prompt(start, shown), p, seed=0)


#: the projection printed before a run, by proposer (a proposer without one gets OPRO's)
_PROJECTIONS = {"reflective": _reflective_projection_line}


def _merge(flag: Any, cfg: dict[str, Any], key: str, default: Any = None) -> Any:
    return flag if flag is not None else cfg.get(key, default)


@dataclass(frozen=True)
class ConfigFile:
    """The keys a ``--config`` file may hold, with their types (checked, with the file's name, before
    anything runs; a key that is none of these is refused, not ignored): the flags of the same
    names, the task's options under ``task_options``, prices as ``--price`` takes them."""

    task: str | None = None
    optimizer_model: str | None = None
    scorer_model: str | None = None
    steps: int | None = None
    per_step: int | None = None
    top_k: int | None = None
    exemplars: int | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    patience: int | None = None
    seed: int | None = None
    constrained: bool | None = None
    structured_output: str | None = None
    budget_calls: int | None = None
    budget_tokens: int | None = None
    budget_dollars: float | None = None
    budget_metric_calls: int | None = None
    proposer: str | None = None
    minibatch_size: int | None = None
    demos: int | None = None
    optimizer_api_key_env: str | None = None
    scorer_api_key_env: str | None = None
    prices: dict[str, Any] | list[str] | str | None = None
    task_options: dict[str, Any] | None = None


#: how a user gives a price, named when a dollar budget meets a model without one
PRICE_HINT = "--price MODEL=IN/OUT (e.g. --price gpt-4o-mini=0.15/0.6) or --price @prices.json"


def _budget(
    cfg: dict[str, Any],
    calls: int | None,
    tokens: int | None,
    dollars: float | None,
    prices: list[str] | None = None,
) -> Budget:
    """The run's limits and prices: the config file's ``prices`` (a JSON object, or a list of
    ``MODEL=IN/OUT`` / ``@FILE`` texts), then each ``--price``, over :data:`DEFAULT_PRICES`; the
    in-process backends (local, hf, vllm, fake) cost $0 unless priced."""
    dollars = _merge(dollars, cfg, "budget_dollars")
    if dollars is not None and (isinstance(dollars, bool) or not isinstance(dollars, int | float)):
        raise ConfigError(f"budget_dollars must be a number, got {dollars!r}")
    if dollars is not None and not 0 <= dollars < float("inf"):
        raise ConfigError(f"--budget-dollars must be a finite number >= 0, got {dollars}")
    return Budget(
        max_calls=positive("--budget-calls", _merge(calls, cfg, "budget_calls")),
        max_tokens=positive("--budget-tokens", _merge(tokens, cfg, "budget_tokens")),
        max_dollars=dollars,
        prices={**DEFAULT_PRICES, **_config_prices(cfg.get("prices")), **parse_prices(prices or [])},
        free_schemes=IN_PROCESS_SCHEMES,
    )


def _config_prices(value: Any) -> dict[str, tuple[float, float]]:
    """``prices`` of a --config file: ``{"model": [in, out]}``, or ``MODEL=IN/OUT`` / ``@FILE`` texts."""
    if value is None:
        return {}
    if isinstance(value, str):
        return parse_prices([value])
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return parse_prices(value)
    return prices_from_json(value, "prices in the config file")


def _models_called(task: Task, *llms: LLM | None) -> list[str]:
    """The names of the models a run calls: those given, and those the task projects requests to."""
    names = [llm.name for llm in llms if llm is not None]
    hook = getattr(task, "cost_projection", None)
    if callable(hook):
        names += [model for model, _, _ in hook(1)]
    return list(dict.fromkeys(names))


def _start(
    flags: dict[str, Any],
    cfg: dict[str, Any],
    task_opts: dict[str, Any],
    budget: Budget,
    overwrite: bool,
    access: ModelAccess,
) -> tuple[OPRO, Task, LLM, Run]:
    """A new run: the task from config file + flags, the models, the run directory."""
    task_name = _merge(flags["task"], cfg, "task")
    if not task_name:
        raise ConfigError("--task is required (see `promptopt tasks list`)")
    cfg_opts = cfg.get("task_options", {}) or {}
    if not isinstance(cfg_opts, dict):
        raise ConfigError("task_options in the config file must be a JSON object")
    seed = int(_merge(flags["seed"], cfg, "seed", 0))
    entry = get_task_entry(task_name)
    options = {**cfg_opts, **task_opts}
    params = entry.check(options)
    check_guard(options.get("rewriter"), options.get("guard_model"), options.get("guard_llm"))  # before loads
    if "keep_original" in options:  # a --task-option value is a string until the task converts it
        keep = convert_option("keep_original", options["keep_original"], params["keep_original"])
        check_keep_original(options.get("rewriter"), keep)
    # a directory no run can go into is refused before any model is loaded
    run_dir = check_run_dir(flags["run_dir"] or _default_run_dir(task_name), overwrite=overwrite)
    scorer_spec = _merge(flags["scorer_model"], cfg, "scorer_model")
    if scorer_spec is not None and not entry.uses_scorer:
        raise ConfigError(f"task {task_name!r} does not use a scorer model; drop --scorer-model")
    scorer_spec = (scorer_spec or DEFAULT_MODEL) if entry.uses_scorer else None
    scorer = (
        open_model(
            scorer_spec, budget=budget, cache_policy="deterministic", **access.options(scorer_spec, "scorer")
        )
        if scorer_spec
        else None
    )
    if access.scorer_api_key_env and scorer_spec is None:
        raise ConfigError(f"task {task_name!r} does not use a scorer model; drop --scorer-api-key-env")
    judge = open_judge(entry, options, budget, scorer=scorer, scorer_spec=scorer_spec, access=access)
    task = _build_task(
        entry, options, budget, access, scorer=scorer, scorer_spec=scorer_spec, seed=seed, judge=judge
    )
    opro = OPRO(seed=seed, **{_OPRO_NAMES.get(k, k): _merge(flags[k], cfg, k) for k in _OPRO_FLAGS})
    opro.params(task)  # validate before anything is written
    opt_spec = _merge(flags["optimizer_model"], cfg, "optimizer_model", DEFAULT_MODEL)
    # the optimizer samples at temperature 1 with per-proposal seeds: caching them all makes a
    # resumed or repeated run replay for free
    optimizer = open_model(
        opt_spec,
        budget=budget,
        cache_policy="all",
        **_structured_option(flags, cfg, opt_spec),
        **access.options(opt_spec, "optimizer"),
    )
    budget.check_priced(_models_called(task, optimizer, scorer, judge), how=PRICE_HINT)  # before any write
    recorded = {ACCESS_KEY: access.record()} if not access.is_empty() else {}  # names only
    run_config = opro.run_config(
        task,
        optimizer,
        optimizer_model=opt_spec,
        scorer_model=scorer_spec,
        budget=budget.config(),
        **recorded,
    )
    run = Run.create(run_dir, run_config, overwrite=overwrite)
    return opro, task, optimizer, run


def _continue(
    flags: dict[str, Any], task_opts: dict[str, Any], budget: Budget, access: ModelAccess
) -> tuple[OPRO, Task, LLM, Run]:
    """``--resume``: the library rebuilds everything from the run directory and checks the flags."""
    if flags["run_dir"] is None:
        raise ConfigError("--resume needs --run-dir DIR")
    if task_opts:
        _check_same_task_options(flags["run_dir"], task_opts)
    if flags["structured_output"] is not None:
        raise ConfigError(
            "--structured-output cannot change on --resume (the run's recorded mechanism is used)"
        )
    opro = OPRO(seed=flags["seed"], **{_OPRO_NAMES.get(k, k): flags[k] for k in _OPRO_FLAGS})
    r = opro.reopen(  # a guarded run's guard too is opened there, with the run's access
        flags["run_dir"],
        task=flags["task"],
        llm=flags["optimizer_model"],
        scorer=flags["scorer_model"],
        budget=budget if budget.has_limits() else None,  # no budget flag: the run's limits
        access=access,  # the headers again (never stored); key variables: the run's unless given
    )
    try:  # the run's recorded prices, under those given now; then every model must have one
        recorded = Budget.from_limits(r.config.get("budget"))
        r.budget.prices = {**recorded.prices, **budget.user_prices()}
        r.budget.free_schemes = recorded.free_schemes | budget.free_schemes
        r.budget.check_priced(_models_called(r.task, r.llm), how=PRICE_HINT)
    except PromptoptError:
        r.run.close()
        raise
    _print_guard_line(r.task)
    err_console().print(f"resuming {r.run.path} ({len(r.run.records)} journal records)")
    return r.opro, r.task, r.llm, r.run


def _build_task(
    entry: TaskEntry,
    options: dict[str, Any],
    budget: Budget,
    access: ModelAccess,
    *,
    scorer: LLM | None,
    scorer_spec: str | None,
    seed: int | None,
    judge: LLM | None,
) -> Task:
    """The task built from ``options``, with the rewrite guard's model (``guard_model``) opened for
    it as a resumed run opens it (:func:`~promptopt.optimizers.opro.optimizer.build_guarded`: closed
    once the task is built), and its tally printed (one line)."""
    guard = _open_guard(options, budget, access, scorer=scorer, scorer_spec=scorer_spec)
    task = build_guarded(entry, options, guard, scorer=scorer, seed=seed, judge=judge)
    _print_guard_line(task)
    return task


def _open_guard(
    options: dict[str, Any],
    budget: Budget,
    access: ModelAccess,
    *,
    scorer: LLM | None,
    scorer_spec: str | None,
) -> LLM | None:
    """The rewrite guard's judge model of ``options["guard_model"]``, opened as a resumed run opens
    it (:func:`~promptopt.optimizers.opro.optimizer.open_guard`: the scorer's key variable and
    headers, or the scorer itself). Under a dollar limit, refused without a price before it is asked
    (its calls are spent while the task is built); a guard without a rewriter was refused by
    ``_start`` before anything was loaded."""
    guard = open_guard(options, budget, access, scorer=scorer, scorer_spec=scorer_spec)
    if guard is not None and guard is not scorer:
        try:
            budget.check_priced([guard.name], how=PRICE_HINT)
        except PromptoptError:
            run_sync(guard.aclose())
            raise
    return guard


def _print_guard_line(task: Task) -> None:
    """What the guard did, from the split recipe (``rewrite_splits``): one line on stderr before the
    run, for a run with a guard (its recipe has a ``guard`` entry)."""
    recipe = getattr(getattr(task, "splits", None), "recipe", {}) or {}
    counts = recipe.get("guard")
    if not counts:
        return
    questions = (recipe.get("rewriter") or {}).get("questions", "?")
    errors = counts.get("error", 0)
    line = (
        f"rewrite guard: {counts.get('kept', 0)} kept, {counts.get('reverted', 0)} reverted (scored as "
        f"written), {errors} error{'s' if errors != 1 else ''}, {counts.get('unchanged', 0)} unchanged, "
        f"of {questions} questions"
    )
    err_console().print(line, markup=False, soft_wrap=True)


_MISSING = object()


def _check_same_task_options(run_dir: Path, given: dict[str, Any]) -> None:
    """Task flags repeated on ``--resume`` are fine when they say what the run recorded (a script
    that reruns its own command line); a different value is refused, naming the options."""
    from promptopt.runs import read_run_config

    cfg = read_run_config(run_dir)
    recorded = cfg.get("task_config") if isinstance(cfg.get("task_config"), dict) else {}
    try:
        params = get_task_entry(str(cfg.get("task"))).parameters()
    except PromptoptError:
        params = {}
    changed = []
    for key, value in given.items():
        old = recorded.get(key, _MISSING)
        if old is _MISSING and key in params:  # not recorded: the factory's default was used
            old = params[key].default
        if not _same_option(old, value):
            changed.append(key)
    if changed:
        raise ConfigError(
            f"task options cannot change on --resume ({', '.join(sorted(changed))} differ from the run's "
            "config.json); drop them, or start a new run with --run-dir"
        )


def _same_option(old: Any, new: Any) -> bool:
    """Whether a flag's value (often a string) states the recorded one (typed in config.json)."""
    if old == new:
        return True
    if isinstance(old, list | tuple) and isinstance(new, list | tuple):
        return len(old) == len(new) and all(_same_option(a, b) for a, b in zip(old, new, strict=True))
    if isinstance(old, list | tuple) and len(old) == 1:
        return _same_option(old[0], new)
    if isinstance(old, bool) or isinstance(new, bool):
        return str(old).lower() == str(new).strip().lower()
    if isinstance(old, int | float) and not isinstance(old, bool):
        try:
            return float(old) == float(new)
        except (TypeError, ValueError):
            return False
    return old is not None and str(old) == str(new)


#: flags that are OPRO parameters (also keys of a --config file)
_OPRO_FLAGS = (
    "steps",
    "per_step",
    "top_k",
    "exemplars",
    "temperature",
    "max_tokens",
    "patience",
    "constrained",
    *("proposer", "minibatch_size", "budget_metric_calls", "demos"),
)
#: flags whose OPRO parameter has another name
_OPRO_NAMES = {"exemplars": "num_exemplars", "budget_metric_calls": "max_metric_calls"}
#: typed flags that are task options (the task's factory refuses the ones it does not take)
_TASK_FLAGS = (
    *("n", "w_true", "b_true"),
    *("dataset", "data_dir", "position", "train_ratio", "meta_prompt", "rewriter", "guard_model", "scoring"),
    "keep_original",
    *("target_field", "metric", "judge", "judge_model", "topic", "answer_type", "val_top_k", "split_seed"),
    "extract_answer",
)


def _own_data_options(flags: dict[str, Any]) -> dict[str, Any]:
    """The own-data flags that need more than passing through: several ``--input-field`` (repeated
    or comma-separated), ``@FILE`` texts, split sizes as counts or fractions, ``--initial`` lists."""
    from promptopt.tasks.instructions.datasets import parse_split_size, read_text_option

    out: dict[str, Any] = {}
    fields = [f.strip() for v in flags["input_field"] or [] for f in v.split(",") if f.strip()]
    if fields:
        out["input_field"] = fields[0] if len(fields) == 1 else fields
    for key, what in (("template", "--template"), ("system_prompt", "--system-prompt")):
        text = read_text_option(flags[key], what)
        if text is not None:
            out[key] = text
    for key in ("train", "val", "test"):
        if flags[key] is not None:
            out[key] = parse_split_size(flags[key], f"--{key}")
    if flags["initial"]:
        out["initial"] = list(flags["initial"])
    if flags["scorer_max_tokens"] is not None:
        out["max_tokens"] = positive("--scorer-max-tokens", flags["scorer_max_tokens"])
    if flags["keep_answers"] is False:
        out["keep_answers"] = False
    return out


def _structured_option(flags: dict[str, Any], cfg: dict[str, Any], spec: str) -> dict[str, Any]:
    """``--structured-output`` as the backend option: declared for OpenAI-compatible servers only
    (never guessed from the URL); other backends know their own mechanism."""
    declared = _merge(flags["structured_output"], cfg, "structured_output")
    if declared is None:
        return {}
    check_server_mechanism(declared)
    if ModelSpec.parse(spec).scheme != "openai":
        raise ConfigError("--structured-output applies to openai:<model>@<url> optimizer models only")
    return {"structured_output": declared}


def _print_result(result: Result, task: Task, optimizer: LLM, run: Run) -> None:
    out = console()
    out.print(
        f"stopped: {result.stop_reason} ({result.report.get('stop_detail', '')}) after {result.steps} steps"
    )
    note = result.report.get("budget")
    if isinstance(note, dict):
        for line in _budget_lines(result.stop_reason, note, result.report.get("task") is not None):
            out.print(line)
    out.print(f"best: {result.best}")
    out.print(f"best score: {result.best_score}")
    task_report = result.report.get("task")
    if isinstance(task_report, dict):
        for line in summary_lines(task, task_report):
            out.print(line)
        for warning in _report_warnings(task_report):  # one line each, not wrapped: grep-able
            out.print(f"warning: {warning}", markup=False, soft_wrap=True)
    search = result.report.get("search", {})
    to_opt = search.get("steps_to_optimum")
    out.print(
        f"unique solutions scored: {search.get('unique_scored')}  "
        f"steps to optimum: {'not reached' if to_opt is None else to_opt}"
    )
    evidence = validation_warning(search.get("validation_evidence"))
    if evidence:
        out.print(f"warning: {evidence}", markup=False, soft_wrap=True)
    u = result.usage
    hits = getattr(optimizer, "hits", 0)
    out.print(
        f"usage: {u.get('calls', 0)} calls, {u.get('prompt_tokens', 0) + u.get('completion_tokens', 0)} tokens"
        + (f", ${u['dollars']:.4f}" if u.get("dollars") else "")
        + (f" ({hits} optimizer requests answered from the cache)" if hits else "")
    )
    calls = result.report.get("metric_calls")
    if isinstance(calls, dict):
        limit = calls.get("max")
        out.print(
            f"metric calls: {calls.get('used')}" + (f" of at most {limit}" if limit is not None else "")
        )
    out.print(f"run directory: {run.path}")


def _report_warnings(task_report: dict[str, Any]) -> list[str]:
    """The final report's ``warnings`` (any task may give some; the instruction tasks warn when a
    reference-free metric was met mostly by answers of a word or three), as one-line strings."""
    warnings = task_report.get("warnings")
    if not isinstance(warnings, list):
        return []
    return [" ".join(str(w).split()) for w in warnings]


def _budget_lines(stop_reason: str, note: dict[str, Any], reported: bool) -> list[str]:
    """What the budget did to the final report (``report["budget"]``, see the OPRO loop): the
    share held back for it, and the requests the budget still refused it."""
    hold = note.get("final_hold") if isinstance(note.get("final_hold"), dict) else None
    refused, why = int(note.get("final_refused") or 0), note.get("final_refusal")
    lines = []
    if hold is not None and not hold.get("held"):
        lines.append(
            f"budget: the final report's projected {hold.get('calls'):,} calls / {hold.get('tokens'):,} tokens "
            "did not fit in the budget, so nothing was held back for it"
        )
    stopped = "the search stopped on its budget; " if stop_reason == "budget" else ""
    if why and not reported:
        lines.append(f"budget: {stopped}no final report was made: {why}")
    elif refused or why:
        lines.append(
            f"budget: {stopped}the budget refused {refused} request(s) of the final report ({why}); "
            "what they would have scored is not evaluated"
        )
    elif stopped and hold is not None and hold.get("held"):
        lines.append(f"budget: {stopped}the final report ran in full on the share held back for it")
    elif stopped:
        lines.append(f"budget: {stopped}the final report ran in full")
    return lines


@app.command("run")
def run_command(
    task: str | None = typer.Option(None, "--task", help="Task name (see `promptopt tasks list`)."),
    optimizer_model: str | None = typer.Option(
        None, "--optimizer-model", help="Model spec of the optimizer LLM (default: local)."
    ),
    scorer_model: str | None = typer.Option(
        None,
        "--scorer-model",
        help="Model spec of the scorer LLM, for tasks that score with one (default: local).",
    ),
    steps: int | None = typer.Option(
        None, "--steps", help="Optimization steps (task's paper default if unset)."
    ),
    per_step: int | None = typer.Option(None, "--per-step", help="Proposals per step (paper: 8)."),
    top_k: int | None = typer.Option(None, "--top-k", help="Past solutions shown in the meta-prompt."),
    exemplars: int | None = typer.Option(
        None, "--exemplars", help="Task exemplars per meta-prompt (paper: 3)."
    ),
    temperature: float | None = typer.Option(
        None, "--temperature", help="Optimizer sampling temperature (1.0)."
    ),
    max_tokens: int | None = typer.Option(
        None, "--max-tokens", help="Max tokens per proposal (paper: 1024)."
    ),
    patience: int | None = typer.Option(None, "--patience", help="Stop after N steps without improvement."),
    seed: int | None = typer.Option(None, "--seed", help="Seed of the whole run (0 is a seed)."),
    run_dir: Path | None = typer.Option(
        None, "--run-dir", help="Run directory (default runs/<task>-<time>)."
    ),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --run-dir."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Start over in a --run-dir that holds a run."),
    budget_calls: int | None = typer.Option(None, "--budget-calls", help="Stop before this many LLM calls."),
    budget_tokens: int | None = typer.Option(None, "--budget-tokens", help="Stop before this many tokens."),
    budget_dollars: float | None = typer.Option(None, "--budget-dollars", help="Stop before this many USD."),
    budget_metric_calls: int | None = typer.Option(
        None,
        "--budget-metric-calls",
        help="Stop before a step that could spend more than N metric calls (one candidate scored on one "
        "example, from the cache or not: GEPA's unit). The search's scores count (training, minibatch, "
        "validation); the final report does not. May grow on --resume.",
    ),
    proposer: str | None = typer.Option(
        None,
        "--proposer",
        help="How new candidates are written: "
        + "; ".join(f"{name}: {entry.summary}" for name, entry in PROPOSERS.items())
        + ". Kept on --resume.",
    ),
    minibatch_size: int | None = typer.Option(
        None, "--minibatch-size", help="\\[reflective] training examples each reflection reads (GEPA: 3)."
    ),
    demos: int | None = typer.Option(
        None,
        "--demos",
        help="Few-shot demonstrations (K) searched for the found instruction and recorded with the run "
        "(the `demos` extra).",
    ),
    price: list[str] = typer.Option(
        [],
        "--price",
        help="USD per 1M input/output tokens of a model: MODEL=IN/OUT (repeatable; e.g. gpt-4o-mini=0.15/0.6 "
        "or 'openai:my-model@http://host/v1=0/0'; a bare name matches any scheme and server) or "
        '@prices.json ({"model": [in, out]}). Local, hf, vllm and fake models cost $0; with '
        "--budget-dollars every other model needs a price.",
    ),
    optimizer_api_key_env: str | None = typer.Option(
        None,
        "--optimizer-api-key-env",
        help="NAME of the environment variable holding the optimizer model's API key (openai:, litellm:; "
        "never the key itself). Recorded by name; --resume reads it again.",
    ),
    scorer_api_key_env: str | None = typer.Option(
        None,
        "--scorer-api-key-env",
        help="NAME of the environment variable holding the scorer's (and its judge's) API key.",
    ),
    header: list[str] = typer.Option([], "--header", help=HEADER_HELP),
    config: Path | None = typer.Option(None, "--config", help="JSON file with any of these options."),
    n: int | None = typer.Option(None, "--n", help="\\[tsp] number of points."),
    w_true: float | None = typer.Option(None, "--w-true", "--true-w", help="\\[linear-regression] true w."),
    b_true: float | None = typer.Option(None, "--b-true", "--true-b", help="\\[linear-regression] true b."),
    dataset: str | None = typer.Option(
        None,
        "--dataset",
        help="\\[instructions] gsm8k, bbh:<task>, multiarith, aqua, your data file (.jsonl, .json, .csv, "
        ".tsv, .parquet, or a folder) or a Hugging Face id.",
    ),
    data_dir: str | None = typer.Option(None, "--data-dir", help="\\[instructions] local data directory."),
    input_field: list[str] = typer.Option(
        [],
        "--input-field",
        help="\\[instructions] input column(s) of your data (repeatable or comma-separated; default: "
        "input, question, prompt, instruction, query or text, whichever exists).",
    ),
    target_field: str | None = typer.Option(
        None,
        "--target-field",
        help="\\[instructions] gold-answer column (default: target, answer, label, output, response or "
        "completion; a file with none has no gold answers: score it with --judge).",
    ),
    template: str | None = typer.Option(
        None,
        "--template",
        help="\\[instructions] how a row becomes the question, e.g. 'Context: {context}\\nQuestion: "
        "{question}' (or @FILE).",
    ),
    system_prompt: str | None = typer.Option(
        None,
        "--system-prompt",
        help="\\[instructions] a fixed base system prompt kept beside the searched instruction (or @FILE).",
    ),
    metric: str | None = typer.Option(
        None,
        "--metric",
        help="\\[instructions] how an answer is scored: auto (default), exact, contains, regex:PATTERN, f1, "
        "number, choice, boolean, text, judge[:rubric|pairwise|responsive], ifbench[:prompt|loose|prompt-loose] "
        "(instruction_id_list / kwargs columns), python:module:function, or all:SPEC&SPEC (every one at once, "
        "value = their product; e.g. all:ifbench&judge:responsive zeroes answers that do not do the task).",
    ),
    judge: str | None = typer.Option(
        None,
        "--judge",
        help="\\[instructions] score answers with a judge model, no gold answers needed: rubric (5-point "
        "rubric), pairwise (against the answer without the instruction, both orders) or responsive (1 when the "
        "answer carries out the request, else 0; as a gate: --metric all:ifbench&judge:responsive).",
    ),
    judge_model: str | None = typer.Option(
        None, "--judge-model", help="\\[instructions] model spec of the judge (default: the scorer model)."
    ),
    train: str | None = typer.Option(
        None, "--train", help="\\[instructions] training examples: a count (10) or a fraction (0.5, 50%)."
    ),
    val: str | None = typer.Option(
        None, "--val", help="\\[instructions] validation examples (count or fraction)."
    ),
    test: str | None = typer.Option(
        None, "--test", help="\\[instructions] test examples (count or fraction)."
    ),
    topic: str | None = typer.Option(
        None,
        "--topic",
        help="\\[instructions] what the problems are, for the meta-prompt ('solve TOPIC problems').",
    ),
    answer_type: str | None = typer.Option(
        None, "--answer-type", help="\\[instructions] number, choice, boolean or text (default: guessed)."
    ),
    initial: list[str] = typer.Option(
        [], "--initial", help="\\[instructions] starting instruction (repeatable; '' is no instruction)."
    ),
    scorer_max_tokens: int | None = typer.Option(
        None, "--scorer-max-tokens", help="\\[instructions] max tokens of each scorer answer (400)."
    ),
    val_top_k: int | None = typer.Option(
        None, "--val-top-k", help="\\[instructions] best instructions compared on validation at the end (5)."
    ),
    split_seed: int | None = typer.Option(
        None, "--split-seed", help="\\[instructions] seed of the data split (default: --seed)."
    ),
    keep_answers: bool | None = typer.Option(
        None,
        "--keep-answers/--no-keep-answers",
        help="\\[instructions] keep every answer with its score and feedback in RUN_DIR/answers.jsonl (on).",
    ),
    position: str | None = typer.Option(
        None, "--position", help="\\[instructions] Q_begin, Q_end, A_begin, system."
    ),
    train_ratio: float | None = typer.Option(
        None, "--train-ratio", help="\\[instructions] share used for search (benchmarks)."
    ),
    meta_prompt: str | None = typer.Option(
        None, "--meta-prompt", help="\\[instructions] chat (<INS> tags) or bracket (text-bison [...])."
    ),
    rewriter: str | None = typer.Option(
        None,
        "--rewriter",
        help="\\[instructions] BPO rewriter folder or HF id: every question is rewritten first, so the "
        "instruction is found for the prompts `promptopt serve --rewriter` sends.",
    ),
    guard_model: str | None = typer.Option(
        None,
        "--guard-model",
        help="\\[instructions] with --rewriter: model spec of a judge asked, for every rewritten question, "
        "whether the rewrite keeps every requirement of the original; where it says no (or cannot tell, or "
        "fails) the question is scored as written, as `promptopt serve --guard-model` sends it. Uses the "
        "scorer's key variable and headers; recorded, and asked again (from the cache) on --resume.",
    ),
    keep_original: bool | None = typer.Option(
        None,
        "--keep-original",
        help="\\[instructions] with --rewriter: score each rewritten question as the question followed by "
        "its rewrite (after --guard-model), so no requirement of it is lost; as `promptopt serve "
        "--keep-original` sends it. Recorded; cannot change on --resume.",
    ),
    scoring: str | None = typer.Option(
        None,
        "--scoring",
        help="\\[instructions] full (every candidate on every training example) or racing (stop a "
        "candidate once it cannot reach the validation shortlist, so the final pick is the one full "
        "scoring makes; tune with --task-option race_delta=0.1, race_first=10, race_growth=1.5, "
        "race_target=shortlist|best, best: race against the best so far, more savings, the pick may "
        "differ). The final pick uses full validation scores either way.",
    ),
    constrained: bool | None = typer.Option(
        None,
        "--constrained/--no-constrained",
        help="Decode proposals under the task's proposal shape (a grammar or JSON schema) where the "
        "optimizer's backend can (default: on; local: GBNF; openai: see --structured-output). "
        "Proposals are still parsed and validated.",
    ),
    structured_output: str | None = typer.Option(
        None,
        "--structured-output",
        help="How an openai:<model>@<url> optimizer server decodes under a constraint: vllm "
        "(vllm serve >= 0.12), llama-cpp (llama.cpp server), openai (OpenAI json_schema, strict) or "
        "none (default: never guessed from the URL).",
    ),
    extract_answer: str | None = typer.Option(
        None,
        "--extract-answer",
        help="\\[instructions] never (default), undecided or always: ask the scorer once more "
        "('Therefore, the answer is', Kojima et al. 2022) for answers the grader cannot read "
        "(undecided) or for every answer (always); each such turn is a scorer call under the budget.",
    ),
    task_option: list[str] = typer.Option(
        [], "--task-option", help="KEY=VALUE option for the task (repeatable; for plug-in tasks)."
    ),
    track: str | None = typer.Option(
        None,
        "--track",
        help="Experiment tracking: mlflow[:TRACKING_URI] (the `track` extra), e.g. mlflow:sqlite:///mlflow.db; "
        "a tracked run keeps tracking on --resume.",
    ),
) -> None:
    """Run OPRO on a task; prints the best solution and where the run directory is."""
    flags = dict(locals())
    cfg = load_config_file(config, ConfigFile)
    for name, value in (("--steps", steps), ("--per-step", per_step), ("--max-tokens", max_tokens)):
        positive(name, value)
    positive("--patience", patience)
    for name, value in (("--budget-metric-calls", budget_metric_calls), ("--minibatch-size", minibatch_size),
                        ("--demos", demos)):  # fmt: skip
        positive(name, value)
    budget = _budget(cfg, budget_calls, budget_tokens, budget_dollars, price)
    typed = {k: flags[k] for k in _TASK_FLAGS}
    task_opts = {
        **_parse_task_options(task_option),
        **{k: v for k, v in typed.items() if v is not None},
        **_own_data_options(flags),
    }
    access = model_access(
        _merge(optimizer_api_key_env, cfg, "optimizer_api_key_env"),
        _merge(scorer_api_key_env, cfg, "scorer_api_key_env"),
        header,
    )
    access.check_keys()
    tracker = parse_track(track) if track is not None else None  # before anything is written
    if resume:
        opro, task_obj, optimizer, run = _continue(flags, task_opts, budget, access)
    else:
        opro, task_obj, optimizer, run = _start(flags, cfg, task_opts, budget, overwrite, access)
    opro.track = tracker
    resolved = opro.params(task_obj)
    projection = _PROJECTIONS.get(str(resolved.get("proposer", DEFAULT_PROPOSER)), _projection_line)
    err_console().print(projection(resolved, task_obj, optimizer, budget))
    flag = StopFlag()
    try:
        with flag.handle_sigint(), _Progress(task_obj.name, resolved["steps"], optimizer) as progress:
            result = opro.optimize(
                task_obj, llm=optimizer, budget=budget, run=run, stop_flag=flag, progress=progress
            )
    finally:
        run.close()
    _print_result(result, task_obj, optimizer, run)


@app.command("report")
def report_command(run_dir: Path = typer.Argument(..., help="An OPRO run directory.")) -> None:
    """Write report.md and PNG plots into RUN_DIR."""
    from promptopt.optimizers.opro.report import write_report

    written = write_report(run_dir)
    out = console()
    for p in written:
        out.print(str(p))
