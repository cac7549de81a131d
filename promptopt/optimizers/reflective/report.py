"""The reflective iterations as a table for ``opro report`` (from the journal alone, like the rest of
the report): which parent each iteration started from, its minibatch sums, what became of the
child, and its validation score when it joined the pool."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from promptopt.tasks.base import number


def _cell(text: Any, limit: int = 80) -> str:
    t = " ".join(str(text or "").split())
    return (t if len(t) <= limit else t[:limit] + " …").replace("|", "\\|")


def iterations_section(records: Sequence[Mapping[str, Any]]) -> list[str]:
    """Markdown: a heading and one row per committed iteration (``[]`` for a run without any)."""
    parents: dict[int, Any] = {}
    children: dict[int, Mapping[str, Any]] = {}
    rows = []
    for r in records:
        event, step = r.get("event"), r.get("step")
        if event == "step_started" and "parent" in r:
            parents[int(step)] = r.get("parent")  # type: ignore[arg-type]
        elif event == "trial" and isinstance(r.get("trial"), Mapping):
            children[int(r["trial"].get("step", -1))] = r["trial"]
        elif event == "step_done" and isinstance(step, int) and step > 0 and "outcome" in r:
            t = children.get(step) or {}
            sums = (t.get("info") or {}).get("minibatch")
            mb = f"{number(sums[0])} → {number(sums[1])}" if isinstance(sums, list) and len(sums) == 2 else ""
            child = _cell(t.get("text") or t.get("reason"))
            rows.append(
                f"| {step} | {parents.get(step, '')} | {mb} | {_cell(r['outcome'], 40)} | {child} | "
                f"{number(t.get('score')) if t.get('status') == 'scored' else ''} |"
            )
    if not rows:
        return []
    head = ["## Reflective iterations", "", "Parent: pool index (0 = the first starting instruction); minibatch: "
            "sums of the per-example values, parent → child.", "",
            "| iteration | parent | minibatch | outcome | child (or why none) | validation |",
            "|---|---|---|---|---|---|"]  # fmt: skip
    return [*head, *rows, ""]
