"""Turn an OPRO run directory into report.md and PNG plots.

Everything comes from the run's files (config.json, journal.jsonl, result.json), never from a live
task or model, so a report can be written for any finished, stopped or crashed run on any machine.

``score_per_step.png`` (every scored proposal as a dot, the best-so-far as a line, the paper's
figures; a log scale when scores span orders of magnitude) is drawn for every task. The task's
section of report.md and its own plots come from the task's report hooks (``report_section``,
``plots``; see :mod:`promptopt.tasks.base`), looked up on the class registered under the run's
task name, so a plug-in task reports like a built-in one.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from promptopt.errors import RunDirError
from promptopt.optimizers.base import Trial
from promptopt.optimizers.opro.history import history_from_records, read_opro_run
from promptopt.optimizers.opro.proposers import DEFAULT_PROPOSER, PROPOSERS
from promptopt.optimizers.opro.stats import validation_warning
from promptopt.runs import atomic_write_text
from promptopt.tasks.base import answers_section, pyplot, report_section, task_plots
from promptopt.tasks.base import number as _num

REPORT_FILE = "report.md"


def load_run(run_dir: str | Path) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
    """(config, journal records, result) of a run directory; result is {} if not written yet.
    Each file is checked for its format and shape first (:func:`read_opro_run`): a report is
    written from what the run recorded or not at all."""
    files = read_opro_run(run_dir)
    return files.config, files.records, files.result


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


def plot_scores(
    history: Sequence[Trial], direction: str, path: Path, title: str, score_name: str
) -> Path | None:
    pts = [(t.step, t.score) for t in history if t.score is not None and t.status in ("scored", "initial")]
    if not pts:
        return None
    plt = pyplot()
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
    if not os.access(d, os.W_OK | os.X_OK):  # the report goes beside the run's files
        raise RunDirError(f"cannot write the report into {d}: the directory is not writable")
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
    plots.extend(task_plots(task_name, history, task_report, d))
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
    doubt = validation_warning(search.get("validation_evidence"))
    if doubt:
        md += [f"**Warning: {doubt}.**", ""]
    if task_report:
        md += ["## Result", ""]
        md += report_section(task_name, task_report, search)
        md.append("")
        failures = answers_section(task_name, d, {**task_report, "demos": result.get("demos") or []})
        if failures:
            md += ["## Where the reported instruction fails", "", *failures, ""]
    for title, p in plots:
        md += [f"## {title}", "", f"![{title}]({p.name})", ""]
    md += ["## Steps", "", *_step_table(records), ""]
    proposer = PROPOSERS.get(str(opro.get("proposer", DEFAULT_PROPOSER)))
    if proposer is not None and proposer.report is not None:  # e.g. the reflective iterations
        md += proposer.report(records)
    out = d / REPORT_FILE
    atomic_write_text(out, "\n".join(md))
    written.insert(0, out)
    return written
