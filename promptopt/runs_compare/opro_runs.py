"""OPRO run directories (both proposers) and the BPO optimizer's run directories → :class:`RunSummary`.

What "score" means here (the table's columns and the plot's curves):

- ``best``: the score the search optimised, after its last committed step, as the journal's
  ``step_done`` records and result.json carry it. With OPRO's own proposer that is the best
  *training* score (the task's score on its training subset; for instruction search the
  accuracy in %); with the reflective proposer it is the best *validation* score (GEPA's Pareto
  pool is scored on the validation split). Lower is better for tasks whose direction is ``min``
  (TSP's tour length, linear regression's loss). The plot draws this best-so-far per step, and per
  metric call (one candidate scored on one example: the run's own count, see
  :mod:`promptopt.optimizers.metric_calls`); the two proposers' curves share a panel per task but
  are on different splits, so the validation and test columns are the fair comparison.
- ``validation``: the reported instruction's validation accuracy from the final report (the
  shortlist's row for it), or the reflective search's own best when no shortlist was compared.
- ``test``: the reported instruction's held-out test accuracy, with a bootstrap 95 % interval
  over the test examples' per-example values (``report.task.per_example.best``; a failed request
  counts as wrong, as the accuracy counts it).

Files are read through the validated readers (:func:`promptopt.optimizers.opro.history.read_opro_run`;
for BPO runs :func:`promptopt.runs.read_run_result` and the journal's own reader).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from promptopt.errors import RunDirError
from promptopt.evaluators.stats import bootstrap_mean_ci
from promptopt.optimizers.metric_calls import trial_metric_calls
from promptopt.optimizers.opro.history import history_from_records, read_opro_run
from promptopt.records import read_json_object
from promptopt.runs import CONFIG_FILE, JOURNAL_FILE, format_version, read_journal, read_run_result
from promptopt.runs_compare import journal_facts
from promptopt.runs_compare.model import Curve, RunSummary, Score

#: config.json budget keys → the table's words
_LIMITS = {"max_calls": "calls", "max_tokens": "tokens", "max_dollars": "$", "max_seconds": "seconds"}
N_BOOT = 10_000


def read_opro(path: Path) -> RunSummary:
    """An OPRO run directory (``kind`` ``opro``, or ``opro/reflective``) as a :class:`RunSummary`."""
    files = read_opro_run(path)
    cfg, records, result = files.config, files.records, files.result
    params = {**(cfg.get("opro") or {}), **(result.get("params") or {})}
    proposer = str(params.get("proposer") or "opro")
    split = "validation" if proposer == "reflective" else "search"
    summary = _common(path, "opro" if proposer == "opro" else f"opro/{proposer}", cfg, records, result)
    summary.models = _models(cfg)
    budget = _limits(cfg.get("budget"))
    if params.get("max_metric_calls") is not None:
        budget["metric calls"] = params["max_metric_calls"]
    budget["steps"] = params.get("steps")
    summary.budget = {k: v for k, v in budget.items() if v is not None}
    report = result.get("report") if isinstance(result.get("report"), Mapping) else {}
    best = result.get("best_score")
    steps = journal_facts.step_scores(records)
    if best is None and steps:
        best = steps[-1][1]
    summary.best = Score(f"best {split} score", None if best is None else float(best))
    task_report = report.get("task") if isinstance(report.get("task"), Mapping) else {}
    summary.validation = _validation(task_report, summary.best if proposer == "reflective" else None)
    test = _test(task_report)
    summary.test = [test] if test is not None else []
    calls = report.get("metric_calls") if isinstance(report.get("metric_calls"), Mapping) else {}
    xs = _metric_calls_per_step(records, steps, reflective=proposer == "reflective")
    used = calls.get("used")
    summary.metric_calls = int(used) if isinstance(used, int) else (xs[-1] if xs else None)
    if steps:
        summary.curves.append(
            Curve(
                label=f"{path.name} (best {split} score)",
                metric=f"{cfg['task']} score",
                direction=cfg["direction"],
                steps=tuple(float(s) for s, _, _ in steps),
                scores=tuple(v for _, v, _ in steps),
                metric_calls=tuple(xs) if xs else None,
            )
        )
    return summary


def read_bpo_run(path: Path) -> RunSummary:
    """A run directory of the BPO optimizer over a task (``BPO.optimize(task, run=DIR)``)."""
    cfg = read_json_object(path / CONFIG_FILE, error=RunDirError, what="run config")
    format_version(cfg, path / CONFIG_FILE)
    records = read_journal(path / JOURNAL_FILE)
    result = read_run_result(path)
    summary = _common(path, "bpo", cfg, records, result)
    summary.models = {
        "rewriter": str(cfg.get("rewriter") or "—"),
        "target": str(cfg.get("optimizer_model") or "—"),
    }
    summary.budget = _limits(cfg.get("budget"))
    steps = journal_facts.step_scores(records)
    best = result.get("best_score", steps[-1][1] if steps else None)
    summary.best = Score("best score", None if best is None else float(best))
    if steps:
        summary.curves.append(
            Curve(
                label=f"{path.name} (best score)",
                metric=f"{cfg.get('task')} score",
                direction="min" if cfg.get("direction") == "min" else "max",
                steps=tuple(float(s) for s, _, _ in steps),
                scores=tuple(v for _, v, _ in steps),
            )
        )
    return summary


def _common(
    path: Path, kind: str, cfg: Mapping[str, Any], records: list[dict[str, Any]], result: Mapping[str, Any]
) -> RunSummary:
    """What every run directory says the same way: task, status, start, usage, wall time."""
    usage = result.get("usage") if isinstance(result.get("usage"), Mapping) else None
    usage = usage or journal_facts.last_usage(records) or {}
    calls = usage.get("calls")
    tokens = (usage.get("prompt_tokens") or 0) + (usage.get("completion_tokens") or 0)
    return RunSummary(
        path=str(path),
        kind=kind,
        task=str(cfg.get("task") or "—"),
        status=journal_facts.status(path, records),
        started=journal_facts.started(records),
        calls=int(calls) if isinstance(calls, int) else None,
        tokens=int(tokens) if usage else None,
        wall_seconds=journal_facts.wall_seconds(records),
    )


def _models(cfg: Mapping[str, Any]) -> dict[str, str]:
    out = {"optimizer": str(cfg.get("optimizer_model"))}
    if cfg.get("scorer_model"):
        out["scorer"] = str(cfg["scorer_model"])
    judge = (cfg.get("task_config") or {}).get("judge_model")
    if judge:
        out["judge"] = str(judge)
    return out


def _limits(budget: Any) -> dict[str, Any]:
    if not isinstance(budget, Mapping):
        return {}
    return {word: budget[key] for key, word in _LIMITS.items() if budget.get(key) is not None}


def _validation(task_report: Mapping[str, Any], search_best: Score | None) -> Score | None:
    """The reported instruction's validation accuracy (the shortlist's row for it)."""
    rows = task_report.get("validation")
    chosen = task_report.get("instruction")
    if isinstance(rows, list):
        for row in rows:
            if isinstance(row, Mapping) and row.get("instruction") == chosen:
                value = row.get("val_accuracy")
                if isinstance(value, int | float):
                    return Score("validation accuracy", float(value), unit="%")
    if search_best is not None and search_best.value is not None:
        return Score("validation accuracy", search_best.value, unit="%")
    return None


def _test(task_report: Mapping[str, Any]) -> Score | None:
    """The reported instruction's test accuracy with a bootstrap 95 % CI from its per-example values."""
    test = task_report.get("test")
    best = test.get("best") if isinstance(test, Mapping) else None
    if not isinstance(best, Mapping) or not isinstance(best.get("accuracy"), int | float):
        return None
    per = task_report.get("per_example")
    values = per.get("best") if isinstance(per, Mapping) else None
    ci = None
    if isinstance(values, list) and values:
        numbers = [
            float(v) if isinstance(v, int | float) and not isinstance(v, bool) else 0.0 for v in values
        ]
        ci = bootstrap_mean_ci(numbers, n_boot=N_BOOT, seed=0)
    return Score("test accuracy", float(best["accuracy"]), ci, "%")


def _metric_calls_per_step(
    records: list[dict[str, Any]], steps: list[tuple[int, float, Mapping[str, Any]]], *, reflective: bool
) -> list[int]:
    """Metric calls spent by the end of each committed step: the reflective loop records them on
    ``step_done``; for OPRO's own proposer they are its committed trials' (the run's own count)."""
    if reflective:
        out = [r.get("metric_calls") for _, _, r in steps]
        return [int(x) for x in out] if all(isinstance(x, int) for x in out) else []
    per_step: dict[int, int] = {}
    for t in history_from_records(records):
        per_step[t.step] = per_step.get(t.step, 0) + trial_metric_calls(t)
    return [sum(n for s, n in per_step.items() if s <= step) for step, _, _ in steps]
