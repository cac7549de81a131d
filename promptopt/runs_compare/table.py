"""The comparison table: rows of text for the terminal and markdown, and the JSON copy.

Why the definitions travel with the table: "best" is a training score for one proposer, a
validation score for another and a loss for a rewriter; the markdown and JSON copies say what each
column holds, so a table read later (or by a script) means what it meant when written.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from promptopt.runs import atomic_write_text
from promptopt.runs_compare.model import RunSummary, budget_text, duration_text, models_text

TABLE_MD = "compare.md"
TABLE_JSON = "compare.json"

COLUMNS = (
    "run", "kind", "task", "models", "budget", "best", "validation", "test [95% CI]",
    "calls", "tokens", "metric calls", "wall time",
)  # fmt: skip

#: what each score column holds, written beside the table
DEFINITIONS = {
    "best": "the score the run optimised, at its end: OPRO (opro proposer) best training score; "
    "reflective proposer best validation score; bpo-train final training loss; bpo-eval ΔWR",
    "validation": "the reported instruction's validation accuracy (%); bpo-train: validation loss",
    "test [95% CI]": "held-out test accuracy of the reported instruction (%) with a bootstrap 95% "
    "interval over its test examples; bpo-eval: ΔWR per test set (win% - loss%, percentage points) "
    "with its bootstrap interval",
    "metric calls": "one candidate scored on one example (bpo-eval: one item judged)",
    "wall time": "from the journal's timestamps, summed over sessions (bpo: the tool's own runtime)",
}


def _count(x: int | None) -> str:
    return "—" if x is None else f"{x:,}"


def row(s: RunSummary) -> dict[str, str]:
    """One run as the table's cells."""
    return {
        "run": s.path,
        "kind": s.kind,
        "task": s.task,
        "models": models_text(s.models),
        "budget": budget_text(s.budget),
        "best": s.best.text() if s.best is not None else "—",
        "validation": s.validation.text() if s.validation is not None else "—",
        "test [95% CI]": "; ".join(
            (f"{t.label.removeprefix('ΔWR ')}: " if t.label.startswith("ΔWR") and len(s.test) > 1 else "")
            + t.text()
            for t in s.test
        )
        or "—",
        "calls": _count(s.calls),
        "tokens": _count(s.tokens),
        "metric calls": _count(s.metric_calls),
        "wall time": duration_text(s.wall_seconds),
    }


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown(summaries: Sequence[RunSummary]) -> str:
    """The table as markdown, with the column definitions and each run's notes below it."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for s in summaries:
        cells = row(s)
        lines.append("| " + " | ".join(_cell(cells[c]) for c in COLUMNS) + " |")
    lines += ["", *(f"- **{k}**: {v}" for k, v in DEFINITIONS.items())]
    notes = [f"- {s.path}: {n}" for s in summaries for n in s.notes]
    if notes:
        lines += ["", "Notes:", *notes]
    return "\n".join(lines) + "\n"


def to_json(summaries: Sequence[RunSummary]) -> dict[str, Any]:
    return {"definitions": DEFINITIONS, "runs": [s.to_json() for s in summaries]}


def write_tables(summaries: Sequence[RunSummary], out_dir: Path) -> list[Path]:
    """compare.md and compare.json into ``out_dir`` (made if missing)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    md, js = out_dir / TABLE_MD, out_dir / TABLE_JSON
    atomic_write_text(md, markdown(summaries))
    atomic_write_text(js, json.dumps(to_json(summaries), indent=2, ensure_ascii=False) + "\n")
    return [md, js]
