"""Turn an OPRO run directory into report.md and PNG plots.

Everything comes from the run's files (config.json, journal.jsonl, result.json), never from a live
task or model, so a report can be written for any finished, stopped or crashed run on any machine.

Plots:
- ``score_per_step.png``: every scored proposal as a dot, the best-so-far as a line (the paper's
  figures); a log scale when scores span orders of magnitude (lin-reg losses do).
- ``tsp_tour.png``: the best tour found, the optimum dashed, the baselines' lengths in the legend.
- ``linreg_path.png``: every (w, b) explored coloured by step, the best-so-far path, the true pair
  and the grid optimum.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from promptopt.errors import RunDirError
from promptopt.optimizers.base import Trial
from promptopt.optimizers.opro.optimizer import history_from_records
from promptopt.runs import CONFIG_FILE, JOURNAL_FILE, RESULT_FILE, atomic_write_text, read_journal

REPORT_FILE = "report.md"


def load_run(run_dir: str | Path) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
    """(config, journal records, result) of a run directory; result is {} if not written yet."""
    d = Path(run_dir)
    if not (d / CONFIG_FILE).exists():
        raise RunDirError(f"{d} is not a run directory (no {CONFIG_FILE})")
    try:
        config = json.loads((d / CONFIG_FILE).read_text(encoding="utf-8"))
        result = (
            json.loads((d / RESULT_FILE).read_text(encoding="utf-8")) if (d / RESULT_FILE).exists() else {}
        )
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RunDirError(f"{d}: cannot read the run files: {exc}") from None
    return config, read_journal(d / JOURNAL_FILE), result


def best_so_far(history: Sequence[Trial], direction: str) -> list[tuple[int, float]]:
    """(step, best score up to and including that step) for every step that has a score."""
    best: float | None = None
    by_step: dict[int, float] = {}
    for t in sorted(history, key=lambda t: (t.step, t.index)):
        if t.score is None or t.status not in ("scored", "initial"):
            continue
        if best is None or (t.score > best if direction == "max" else t.score < best):
            best = t.score
        by_step[t.step] = best
    return sorted(by_step.items())


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt

    return plt


def plot_scores(
    history: Sequence[Trial], direction: str, path: Path, title: str, score_name: str
) -> Path | None:
    pts = [(t.step, t.score) for t in history if t.score is not None and t.status in ("scored", "initial")]
    if not pts:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    ax.scatter([p[0] for p in pts], [p[1] for p in pts], s=14, alpha=0.55, label="proposals")
    line = best_so_far(history, direction)
    ax.plot(
        [s for s, _ in line],
        [v for _, v in line],
        color="C3",
        lw=2,
        drawstyle="steps-post",
        label="best so far",
    )
    vals = [p[1] for p in pts]
    if min(vals) > 0 and max(vals) / min(vals) > 100:
        ax.set_yscale("log")
    ax.set_xlabel("step (0 = starting solutions)")
    ax.set_ylabel(score_name)
    ax.set_title(title)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_tsp(report: dict[str, Any], path: Path) -> Path | None:
    pts = report.get("points")
    best = report.get("best", {})
    if not pts or not best.get("tour"):
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 6))
    opt = report.get("optimum", {})
    if opt.get("exact") and opt.get("tour"):
        t = [*opt["tour"], opt["tour"][0]]
        ax.plot(
            [pts[i][0] for i in t],
            [pts[i][1] for i in t],
            "--",
            color="gray",
            lw=1.2,
            label=f"optimum {opt['length']:.1f} ({opt.get('method')})",
        )
    t = [*best["tour"], best["tour"][0]]
    ax.plot(
        [pts[i][0] for i in t],
        [pts[i][1] for i in t],
        "-",
        color="C0",
        lw=2,
        label=f"OPRO best {best['length']:.1f}",
    )
    for name, b in report.get("baselines", {}).items():
        ax.plot([], [], " ", label=f"{name.replace('_', ' ')}: {b['length']:.1f}")
    ax.scatter([p[0] for p in pts], [p[1] for p in pts], color="k", zorder=3, s=18)
    for i, (x, y) in enumerate(pts):
        ax.annotate(str(i), (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_title(f"TSP, n = {report.get('n', len(pts))}: gap {best.get('gap_percent', float('nan')):.2f}%")
    ax.legend(fontsize=8, loc="best")
    ax.set_aspect("equal", adjustable="datalim")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_linreg(history: Sequence[Trial], report: dict[str, Any], path: Path) -> Path | None:
    pts = [
        (t.step, t.info["w"], t.info["b"], t.score)
        for t in history
        if t.score is not None and "w" in t.info and "b" in t.info
    ]
    if not pts:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 5))
    sc = ax.scatter(
        [p[1] for p in pts], [p[2] for p in pts], c=[p[0] for p in pts], cmap="viridis", s=22, alpha=0.8
    )
    fig.colorbar(sc, ax=ax, label="step")
    # the best pair at the end of each step (one point per improvement, not per proposal)
    path_wb: list[tuple[float, float]] = []
    best: tuple[float, float, float] | None = None
    for step in sorted({p[0] for p in pts}):
        for _, w, b, s in (p for p in pts if p[0] == step):
            if best is None or s < best[2]:
                best = (w, b, s)
        if best is not None and (not path_wb or path_wb[-1] != best[:2]):
            path_wb.append(best[:2])
    ax.plot(
        [p[0] for p in path_wb],
        [p[1] for p in path_wb],
        "-o",
        color="C3",
        ms=4,
        lw=1.5,
        label="best-so-far path",
    )
    if report:
        ax.scatter(
            [report["w_true"]],
            [report["b_true"]],
            marker="*",
            s=220,
            color="gold",
            edgecolor="k",
            zorder=4,
            label="true (w, b)",
        )
        o = report.get("optimum", {})
        if o:
            ax.scatter([o["w"]], [o["b"]], marker="x", s=90, color="k", zorder=5, label="grid optimum")
    ax.set_xlabel("w")
    ax.set_ylabel("b")
    ax.set_title("Linear regression: (w, b) explored")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# --------------------------------------------------------------------------- markdown


def _num(v: Any) -> str:
    if isinstance(v, float):
        return "nan" if math.isnan(v) else (f"{v:.4g}" if abs(v) < 1e4 else f"{v:.1f}")
    return "—" if v is None else str(v)


def _tsp_section(report: dict[str, Any]) -> list[str]:
    opt = report["optimum"]
    ref = "optimum" if opt["exact"] else "lower bound (MILP stopped at its time limit)"
    rows = [
        "| solution | length | gap |",
        "|---|---|---|",
        f"| OPRO best | {report['best']['length']:.2f} | {report['best']['gap_percent']:.2f}% |",
    ]
    for name, b in report["baselines"].items():
        rows.append(f"| {name.replace('_', ' ')} | {b['length']:.2f} | {b['gap_percent']:.2f}% |")
    shown = opt["length"] if opt["exact"] else opt["bound"]
    rows.append(f"| {opt['method']} ({'exact' if opt['exact'] else 'bound'}) | {shown:.2f} | 0.00% |")
    return [
        f"n = {report['n']}; gaps are relative to the {ref}.",
        "",
        f"Best tour: `{','.join(map(str, report['best']['tour']))}`",
        "",
        *rows,
    ]


def _linreg_section(report: dict[str, Any], search: dict[str, Any]) -> list[str]:
    b, o = report["best"], report["optimum"]
    return [
        f"True (w, b) = ({_num(report['w_true'])}, {_num(report['b_true'])}); loss there {report['loss_at_true']:.2f}.",
        "",
        "| | w | b | loss |",
        "|---|---|---|---|",
        f"| OPRO best | {_num(b['w'])} | {_num(b['b'])} | {b['loss']:.2f} |",
        f"| grid optimum | {_num(o['w'])} | {_num(o['b'])} | {o['loss']:.2f} |",
        f"| least squares (continuous) | {report['least_squares']['w']:.3f} | "
        f"{report['least_squares']['b']:.3f} | {report['least_squares']['loss']:.2f} |",
        "",
        f"Steps to reach the optimum: {_num(search.get('steps_to_optimum'))}; "
        f"unique pairs explored (incl. the starting ones): {_num(search.get('unique_scored'))}.",
    ]


def _instructions_section(report: dict[str, Any]) -> list[str]:
    rows = ["| instruction | held-out test accuracy | correct / total |", "|---|---|---|"]
    for name, row in (report.get("test") or {}).items():
        text = str(row.get("instruction", "")).replace("|", "\\|").replace("\n", " ")
        rows.append(
            f"| {name}: `{text}` | {_num(row.get('accuracy'))} | {row.get('correct')} / {row.get('total')} |"
        )
    return [
        f"Dataset {report.get('dataset')}, position {report.get('position')}, scorer `{report.get('scorer')}`; "
        f"reported instruction selected by {report.get('selected_by')}.",
        "",
        *rows,
    ]


def _generic_section(report: dict[str, Any]) -> list[str]:
    lines = []
    for k, v in report.items():
        if isinstance(v, list | dict) and len(json.dumps(v, default=str)) > 300:
            continue
        lines.append(f"- **{k}**: {json.dumps(v, default=str) if isinstance(v, list | dict) else _num(v)}")
    return lines


#: task name → (task section writer, extra plots). A registry, not string matching in code paths.
TaskPlotter = Callable[[Sequence[Trial], dict[str, Any], Path], list[tuple[str, Path]]]


def _tsp_plots(history: Sequence[Trial], report: dict[str, Any], d: Path) -> list[tuple[str, Path]]:
    p = plot_tsp(report, d / "tsp_tour.png")
    return [("Best tour", p)] if p else []


def _linreg_plots(history: Sequence[Trial], report: dict[str, Any], d: Path) -> list[tuple[str, Path]]:
    p = plot_linreg(history, report, d / "linreg_path.png")
    return [("Path through (w, b)", p)] if p else []


TASK_PLOTS: dict[str, TaskPlotter] = {"tsp": _tsp_plots, "linear-regression": _linreg_plots}


def _step_table(records: Sequence[dict[str, Any]]) -> list[str]:
    rows = ["| step | kept | dropped | improved | best so far |", "|---|---|---|---|---|"]
    for r in records:
        if r.get("event") == "step_done":
            rows.append(
                f"| {r['step']} | {r.get('kept', '')} | {r.get('dropped', '')} | "
                f"{'yes' if r.get('improved') else ''} | {_num(r.get('best_score'))} |"
            )
    return rows


def write_report(run_dir: str | Path) -> list[Path]:
    """Write report.md and the plots into ``run_dir``; returns the files written."""
    d = Path(run_dir)
    config, records, result = load_run(d)
    history = history_from_records(records)
    task_name = str(config.get("task", "?"))
    direction = str(result.get("direction") or config.get("direction") or "min")
    task_report = (result.get("report") or {}).get("task") or {}
    search = (result.get("report") or {}).get("search") or {}

    written: list[Path] = []
    plots: list[tuple[str, Path]] = []
    sp = plot_scores(history, direction, d / "score_per_step.png", f"OPRO on {task_name}", "score")
    if sp:
        plots.append(("Score per step", sp))
    plotter = TASK_PLOTS.get(task_name)
    if plotter is not None and (task_report or task_name == "linear-regression"):
        plots.extend(plotter(history, task_report, d))
    written.extend(p for _, p in plots)

    opro = result.get("params") or config.get("opro", {})
    usage = result.get("usage", {})
    counts: dict[str, int] = {}
    for t in history:
        counts[t.status] = counts.get(t.status, 0) + 1
    md = [
        f"# OPRO run: {task_name}",
        "",
        f"- run directory: `{d}`",
        f"- optimizer model: `{config.get('optimizer_model', '?')}`"
        + (f"; scorer model: `{config['scorer_model']}`" if config.get("scorer_model") else ""),
        f"- parameters: {', '.join(f'{k}={v}' for k, v in opro.items())}",
        f"- task options: {json.dumps(config.get('task_config', {}), default=str)}",
        f"- stop reason: {result.get('stop_reason', 'not finished (no result.json yet)')}"
        + (
            f" ({result['report'].get('stop_detail')})" if result.get("report", {}).get("stop_detail") else ""
        ),
        f"- steps: {result.get('steps', max((t.step for t in history), default=0))}",
        f"- best ({'higher' if direction == 'max' else 'lower'} is better): `{result.get('best')}` "
        f"with score {_num(result.get('best_score'))}",
        f"- proposals by status: {', '.join(f'{k} {v}' for k, v in sorted(counts.items()))}",
        f"- usage: {usage.get('calls', 0)} calls (+{usage.get('cached_calls', 0)} from cache), "
        f"{usage.get('prompt_tokens', 0)} prompt + {usage.get('completion_tokens', 0)} completion tokens",
        "",
    ]
    if task_report:
        md += ["## Result", ""]
        if task_name == "tsp" and "baselines" in task_report:
            md += _tsp_section(task_report)
        elif task_name == "linear-regression" and "optimum" in task_report:
            md += _linreg_section(task_report, search)
        elif task_name == "instructions" and isinstance(task_report.get("test"), dict):
            md += _instructions_section(task_report) + [""] + _generic_section(task_report)
        else:
            md += _generic_section(task_report)
        md.append("")
    for title, p in plots:
        md += [f"## {title}", "", f"![{title}]({p.name})", ""]
    md += ["## Steps", "", *_step_table(records), ""]
    out = d / REPORT_FILE
    atomic_write_text(out, "\n".join(md))
    written.insert(0, out)
    return written
