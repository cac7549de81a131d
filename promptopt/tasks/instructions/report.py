"""The instruction task's report hooks (see :mod:`promptopt.tasks.base`): the run summary lines
and the markdown section of a run report. They read a finished run's ``result.json`` report only
(called on the class, with no task object or scorer), so they are plain functions of it.
"""

from __future__ import annotations

import json
from typing import Any

from promptopt.tasks.base import number, short_number


def summary(report: dict[str, Any]) -> list[str]:
    """The reported instruction, where it was searched, and its test accuracy next to the
    baselines'."""
    n = short_number
    lines = [
        f"instruction ({report.get('selected_by', 'training score')}): {report.get('instruction')!r}",
        f"dataset: {report.get('dataset')}  position: {report.get('position')}  scorer: {report.get('scorer')}",
    ]
    for name, row in (report.get("test") or {}).items():
        if isinstance(row, dict):
            lines.append(
                f"held-out test accuracy, {name}: {n(row.get('accuracy'))} "
                f"({row.get('correct')}/{row.get('total')}, failed {row.get('failed')}"
                + (f", coverage {n(row['coverage'])})" if row.get("coverage") is not None else ")")
            )
    lines.append(f"best minus best baseline: {n(report.get('best_minus_best_baseline'))}")
    return lines


def report_section(report: dict[str, Any], search: dict[str, Any]) -> list[str]:
    """A table of test accuracies and the report's short entries; a KeyError for a report of
    another shape, so the caller falls back to the generic section."""
    n = number
    if not isinstance(report.get("test"), dict):
        raise KeyError("test")  # a report of another shape: the generic section
    rows = ["| instruction | held-out test accuracy | correct / total |", "|---|---|---|"]
    for name, row in report["test"].items():
        text = str(row.get("instruction", "")).replace("|", "\\|").replace("\n", " ")
        rows.append(
            f"| {name}: `{text}` | {n(row.get('accuracy'))} | {row.get('correct')} / {row.get('total')} |"
        )
    rest = [
        f"- **{k}**: {json.dumps(v, default=str) if isinstance(v, list | dict) else n(v)}"
        for k, v in report.items()
        if not (isinstance(v, list | dict) and len(json.dumps(v, default=str)) > 300)
    ]
    return [
        f"Dataset {report.get('dataset')}, position {report.get('position')}, scorer `{report.get('scorer')}`; "
        f"reported instruction selected by {report.get('selected_by')}.",
        "",
        *rows,
        "",
        *rest,
    ]
