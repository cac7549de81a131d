"""The final report's share of a budget: held while the search runs, accounted for after.

Why: a run stopped by its budget must still report its best candidate on the test split. With
limits, the final report's projected cost (the task's ``cost_projection(n, part="final")`` hook) is
held from the start (after a resume restores the spent usage) and released before the final report;
``report["budget"]`` says what was held and how many final-report requests the budget still refused.
Shared by every proposer's loop.
"""

from __future__ import annotations

from typing import Any

from promptopt.llm.budget import Budget, hold_projected
from promptopt.tasks.base import Task


def hold_final_report(task: Task, budget: Budget, candidates: int) -> dict[str, Any] | None:
    """Hold the projected cost of a final report over ``candidates`` candidates (None: nothing
    held, without limits or a projection)."""
    hook = getattr(task, "cost_projection", None)
    if not budget.has_limits() or not callable(hook):
        return None
    return hold_projected(budget, hook(candidates, part="final"), "the final report")


def final_budget_note(
    budget: Budget, refused_before: int, hold: dict[str, Any] | None, error: str | None
) -> dict[str, Any] | None:
    """``report["budget"]``: the hold, and the final-report requests the budget refused (None
    without limits). ``refused_before``: the budget's refusals when the final report started."""
    if not budget.has_limits():
        return None
    n = budget.refused - refused_before
    return {
        "final_hold": hold,
        "final_refused": n,
        "final_refusal": error or (n and budget.last_refusal) or None,
    }
