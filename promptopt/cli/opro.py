"""`promptopt opro`: run OPRO on a task (`run`) and turn a run directory into a report (`report`).

Only parsing and printing live here: the loop is :class:`promptopt.optimizers.opro.optimizer.OPRO`, which
reports progress through a callback that this module draws with rich.
"""

from __future__ import annotations

import datetime as _dt
import inspect
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from promptopt.cli.common import DEFAULT_MODEL, console, err_console, load_config_file, open_model, positive
from promptopt.errors import ConfigError, RunDirError
from promptopt.llm.base import LLM, Request
from promptopt.llm.budget import Budget, project
from promptopt.optimizers.opro.meta_prompt import PastSolution, build_meta_prompt
from promptopt.optimizers.opro.optimizer import OPRO, ProgressEvent, step_rng
from promptopt.runs import CONFIG_FILE, Run, StopFlag
from promptopt.tasks.base import Task, get_task_entry

app = typer.Typer(
    help="OPRO: an optimizer LLM proposes solutions from past scored ones.", no_args_is_help=True
)

# --------------------------------------------------------------------------- task options


def _factory_params(factory: Callable[..., Any]) -> dict[str, inspect.Parameter]:
    return {
        p.name: p
        for p in inspect.signature(factory).parameters.values()
        if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
    }


def _convert(name: str, value: Any, param: inspect.Parameter) -> Any:
    """A string from ``--task-option`` turned into the type the factory declares (or its
    default's type); values from typed flags and JSON config files pass through."""
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
                return float(value)
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


def _parse_task_options(pairs: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise ConfigError(f"--task-option expects KEY=VALUE, got {pair!r}")
        out[key] = value
    return out


def build_task(
    name: str, options: dict[str, Any], *, scorer_spec: str | None, budget: Budget | None, seed: int
) -> tuple[Task, str | None]:
    """Build a registered task from options, checked against its factory's signature.

    Returns the task and the scorer spec used (None when the task takes no scorer). ``seed`` is
    passed when the factory takes one and the options do not set it.
    """
    entry = get_task_entry(name)
    params = _factory_params(entry.factory)
    unknown = sorted(set(options) - set(params) - {"scorer"})
    if unknown:
        known = ", ".join(p for p in params if p != "scorer") or "none"
        raise ConfigError(f"task {name!r} has no option(s) {', '.join(unknown)}; its options: {known}")
    if "scorer" in options:
        raise ConfigError("give the scorer with --scorer-model, not as a task option")
    kwargs = {k: _convert(k, v, params[k]) for k, v in options.items()}
    if "seed" in params and "seed" not in kwargs:
        kwargs["seed"] = seed
    used_scorer: str | None = None
    if "scorer" in params:
        used_scorer = scorer_spec or DEFAULT_MODEL
        kwargs["scorer"] = open_model(used_scorer, budget=budget, cache_policy="deterministic")
    elif scorer_spec is not None:
        raise ConfigError(f"task {name!r} does not use a scorer model; drop --scorer-model")
    try:
        task = entry.factory(**kwargs)
    except TypeError as exc:  # a wrongly typed option that the factory did not check itself
        raise ConfigError(f"bad option for task {name!r}: {exc}") from None
    return task, used_scorer


# --------------------------------------------------------------------------- printing


def _fmt_num(v: Any) -> str:
    if isinstance(v, float):
        return str(int(v)) if v.is_integer() else f"{v:.2f}"
    return str(v)


def _summary_tsp(report: dict[str, Any]) -> list[str]:
    best, opt = report["best"], report["optimum"]
    ref = "optimum" if opt["exact"] else "lower bound"
    lines = [
        f"tour: {','.join(map(str, best['tour']))}",
        f"length: {best['length']:.2f}   gap to {ref}: {best['gap_percent']:.2f}%",
        f"{ref} ({opt['method']}): {opt['length' if opt['exact'] else 'bound']:.2f}",
    ]
    for name, b in report["baselines"].items():
        lines.append(f"baseline {name}: {b['length']:.2f} (gap {b['gap_percent']:.2f}%)")
    return lines


def _summary_linreg(report: dict[str, Any]) -> list[str]:
    b, o = report["best"], report["optimum"]
    return [
        f"best pair: [{_fmt_num(b['w'])}, {_fmt_num(b['b'])}]  loss {b['loss']:.2f}",
        f"optimum on the grid: [{_fmt_num(o['w'])}, {_fmt_num(o['b'])}]  loss {o['loss']:.2f}"
        f"  (true w, b = {_fmt_num(report['w_true'])}, {_fmt_num(report['b_true'])})",
        f"reached the optimum: {'yes' if report['reached_optimum'] else 'no'}",
    ]


def _summary_generic(report: dict[str, Any], prefix: str = "") -> list[str]:
    lines: list[str] = []
    for k, v in report.items():
        if isinstance(v, dict):
            lines.extend(_summary_generic(v, f"{prefix}{k}."))
        elif isinstance(v, list) and len(v) > 12:
            continue
        else:
            lines.append(f"{prefix}{k}: {_fmt_num(v)}")
    return lines


def _summary_instructions(report: dict[str, Any]) -> list[str]:
    lines = [
        f"instruction ({report.get('selected_by', 'training score')}): {report.get('instruction')!r}",
        f"dataset: {report.get('dataset')}  position: {report.get('position')}  scorer: {report.get('scorer')}",
    ]
    for name, row in (report.get("test") or {}).items():
        if isinstance(row, dict):
            lines.append(
                f"held-out test accuracy, {name}: {_fmt_num(row.get('accuracy'))} "
                f"({row.get('correct')}/{row.get('total')}, failed {row.get('failed')})"
            )
    lines.append(f"best minus best baseline: {_fmt_num(report.get('best_minus_best_baseline'))}")
    return lines


#: task name → how its final report is summarised (others: flattened key: value lines)
SUMMARIES: dict[str, Callable[[dict[str, Any]], list[str]]] = {
    "tsp": _summary_tsp,
    "linear-regression": _summary_linreg,
    "instructions": _summary_instructions,
}


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
    """Cost of the optimizer calls, from a meta-prompt filled with the starting solutions."""
    desc = task.describe()
    start = task.initial_candidates(step_rng(opro_params["seed"], 0))
    entries = [PastSolution(c.text, 0.0, i) for i, c in enumerate(start)]
    while entries and len(entries) < opro_params["top_k"]:
        entries.append(PastSolution(entries[len(entries) % len(start)].text, 0.0, len(entries)))
    meta = build_meta_prompt(desc, entries[: opro_params["top_k"]], task.format_score)
    req = Request.chat(meta, temperature=opro_params["temperature"], max_tokens=opro_params["max_tokens"])
    proj = project(model.name, [req] * opro_params["per_step"], repeat=opro_params["steps"], budget=budget)
    return proj.describe() + " (optimizer calls; scoring calls come on top)"


def _merge(flag: Any, cfg: dict[str, Any], key: str, default: Any = None) -> Any:
    return flag if flag is not None else cfg.get(key, default)


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
    config: Path | None = typer.Option(None, "--config", help="JSON file with any of these options."),
    n: int | None = typer.Option(None, "--n", help="[tsp] number of points."),
    w_true: float | None = typer.Option(None, "--w-true", "--true-w", help="[linear-regression] true w."),
    b_true: float | None = typer.Option(None, "--b-true", "--true-b", help="[linear-regression] true b."),
    dataset: str | None = typer.Option(None, "--dataset", help="[instructions] gsm8k, bbh:<task>, ..."),
    data_dir: str | None = typer.Option(None, "--data-dir", help="[instructions] local data directory."),
    position: str | None = typer.Option(
        None, "--position", help="[instructions] Q_begin, Q_end, A_begin, system."
    ),
    train_ratio: float | None = typer.Option(
        None, "--train-ratio", help="[instructions] share used for search."
    ),
    task_option: list[str] = typer.Option(
        [], "--task-option", help="KEY=VALUE option for the task (repeatable; for plug-in tasks)."
    ),
) -> None:
    """Run OPRO on a task; prints the best solution and where the run directory is."""
    cfg = load_config_file(config)
    for name, value in (("--steps", steps), ("--per-step", per_step), ("--max-tokens", max_tokens)):
        positive(name, value)
    positive("--patience", patience)
    dollars = _merge(budget_dollars, cfg, "budget_dollars")
    if dollars is not None and dollars < 0:
        raise ConfigError("--budget-dollars must be >= 0")
    budget = Budget(
        max_calls=positive("--budget-calls", _merge(budget_calls, cfg, "budget_calls")),
        max_tokens=positive("--budget-tokens", _merge(budget_tokens, cfg, "budget_tokens")),
        max_dollars=dollars,
    )

    flag_opts = {
        opt: v
        for opt, v in (
            ("n", n),
            ("w_true", w_true),
            ("b_true", b_true),
            ("dataset", dataset),
            ("data_dir", data_dir),
            ("position", position),
            ("train_ratio", train_ratio),
        )
        if v is not None
    }
    cli_task_opts = {**_parse_task_options(task_option), **flag_opts}
    cfg_task_opts = cfg.get("task_options", {}) or {}
    if not isinstance(cfg_task_opts, dict):
        raise ConfigError("task_options in the config file must be a JSON object")

    if resume:
        if run_dir is None:
            raise ConfigError("--resume needs --run-dir DIR")
        if not (run_dir / CONFIG_FILE).exists():
            raise RunDirError(f"{run_dir} is not a run directory (no {CONFIG_FILE}); nothing to resume")
        try:
            saved = json.loads((run_dir / CONFIG_FILE).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise RunDirError(f"{run_dir / CONFIG_FILE} is unreadable: {exc}") from None
        if saved.get("kind") != "opro":
            raise RunDirError(f"{run_dir} does not hold an OPRO run")
        for label, given, key in (
            ("--task", task, "task"),
            ("--optimizer-model", optimizer_model, "optimizer_model"),
            ("--scorer-model", scorer_model, "scorer_model"),
            ("--seed", seed, "seed"),
        ):
            if given is not None and given != saved.get(key):
                raise ConfigError(
                    f"{label} {given!r} differs from the run's {saved.get(key)!r}; resume keeps it"
                )
        if cli_task_opts:
            raise ConfigError("task options cannot change on --resume")
        task_name = saved["task"]
        run_seed = int(saved.get("seed", 0))
        task_obj, scorer_used = build_task(
            task_name,
            dict(saved.get("task_config", {})),
            scorer_spec=saved.get("scorer_model"),
            budget=budget,
            seed=run_seed,
        )
        params = dict(saved.get("opro", {}))
        for key, value in (("steps", steps), ("patience", patience)):
            if value is not None:
                params[key] = value
        opt_spec = saved.get("optimizer_model") or DEFAULT_MODEL
        if budget.max_calls is None and budget.max_tokens is None and budget.max_dollars is None:
            saved_budget = saved.get("budget", {}) or {}
            budget.max_calls = saved_budget.get("max_calls")
            budget.max_tokens = saved_budget.get("max_tokens")
            budget.max_dollars = saved_budget.get("max_dollars")
    else:
        task_name = _merge(task, cfg, "task")
        if not task_name:
            raise ConfigError("--task is required (see `promptopt tasks list`)")
        run_seed = int(_merge(seed, cfg, "seed", 0))
        options = {**cfg_task_opts, **cli_task_opts}
        task_obj, scorer_used = build_task(
            task_name,
            options,
            scorer_spec=_merge(scorer_model, cfg, "scorer_model"),
            budget=budget,
            seed=run_seed,
        )
        params = {
            "steps": _merge(steps, cfg, "steps"),
            "per_step": _merge(per_step, cfg, "per_step"),
            "top_k": _merge(top_k, cfg, "top_k"),
            "num_exemplars": _merge(exemplars, cfg, "exemplars"),
            "temperature": _merge(temperature, cfg, "temperature", 1.0),
            "max_tokens": _merge(max_tokens, cfg, "max_tokens", 1024),
            "patience": _merge(patience, cfg, "patience"),
            "seed": run_seed,
        }
        opt_spec = _merge(optimizer_model, cfg, "optimizer_model", DEFAULT_MODEL)

    opro = OPRO(
        steps=params.get("steps"),
        per_step=params.get("per_step"),
        top_k=params.get("top_k"),
        num_exemplars=params.get("num_exemplars"),
        temperature=float(params.get("temperature", 1.0)),
        max_tokens=int(params.get("max_tokens", 1024)),
        patience=params.get("patience"),
        seed=run_seed,
        stop_at_optimum=bool(params.get("stop_at_optimum", True)),
    )
    resolved = opro.params(task_obj)
    # the optimizer samples at temperature 1 with per-proposal seeds: caching them all makes a
    # resumed or repeated run replay for free
    optimizer = open_model(opt_spec, budget=budget, cache_policy="all")

    err = err_console()
    if resume:
        run = Run.resume(run_dir)  # type: ignore[arg-type]
        err.print(f"resuming {run.path} ({len(run.records)} journal records)")
    else:
        path = run_dir or _default_run_dir(task_name)
        run = Run.create(
            path,
            opro.run_config(
                task_obj,
                optimizer_model=opt_spec,
                scorer_model=scorer_used,
                budget=budget.limits(),
            ),
            overwrite=overwrite,
        )
    err.print(_projection_line(resolved, task_obj, optimizer, budget))
    flag = StopFlag()
    try:
        with flag.handle_sigint(), _Progress(task_name, resolved["steps"], optimizer) as progress:
            result = opro.optimize(
                task_obj, llm=optimizer, budget=budget, run=run, stop_flag=flag, progress=progress
            )
    finally:
        run.close()

    out = console()
    out.print(
        f"stopped: {result.stop_reason} ({result.report.get('stop_detail', '')}) after {result.steps} steps"
    )
    out.print(f"best: {result.best}")
    out.print(f"best score: {result.best_score}")
    task_report = result.report.get("task")
    if isinstance(task_report, dict):
        try:
            lines = SUMMARIES.get(task_name, _summary_generic)(task_report)
        except (KeyError, TypeError, ValueError):  # a report of another shape: show it plainly
            lines = _summary_generic(task_report)
        for line in lines:
            out.print(line)
    search = result.report.get("search", {})
    to_opt = search.get("steps_to_optimum")
    out.print(
        f"unique solutions scored: {search.get('unique_scored')}  "
        f"steps to optimum: {'not reached' if to_opt is None else to_opt}"
    )
    u = result.usage
    hits = getattr(optimizer, "hits", 0)
    out.print(
        f"usage: {u.get('calls', 0)} calls, {u.get('prompt_tokens', 0) + u.get('completion_tokens', 0)} tokens"
        + (f" ({hits} optimizer requests answered from the cache)" if hits else "")
    )
    out.print(f"run directory: {run.path}")


@app.command("report")
def report_command(run_dir: Path = typer.Argument(..., help="An OPRO run directory.")) -> None:
    """Write report.md and PNG plots into RUN_DIR."""
    from promptopt.optimizers.opro.report import write_report

    written = write_report(run_dir)
    out = console()
    for p in written:
        out.print(str(p))
