"""The final report's share of a budget: held while the search runs, accounted for after.

Why: a run stopped by its budget must still report its best candidate on the test split. With
limits, the final report's projected cost (the task's ``cost_projection(n, part="final")`` hook,
with the run's ``demos`` and ``max_metric_calls``: a pick tested with its demos asks longer prompts) is
held from the start (after a resume restores the spent usage) and released before the final report;
``report["budget"]`` says what was held and how many final-report requests the budget still refused.
Shared by every proposer's loop; :func:`task_cost_items` and :func:`planned_candidates` also by the
projection ``opro run`` prints, so the line and the hold ask the task alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from promptopt.llm.base import Request
from promptopt.llm.budget import Budget, hold_projected
from promptopt.optimizers.opro.history import step_rng
from promptopt.tasks.base import Task


def planned_candidates(task: Task, p: Mapping[str, Any]) -> int:
    """How many candidates a run with parameters ``p`` plans to score: the starting ones, then
    ``per_step`` × ``steps`` (the reflective proposer's ``per_step`` is 1: a child per iteration).
    What the final report's hold and the projection printed before a run are sized by."""
    return len(task.initial_candidates(step_rng(int(p["seed"]), 0))) + p["steps"] * p["per_step"]


def task_cost_items(
    task: Task,
    candidates: int,
    part: str,
    *,
    demos: int | None = None,
    max_metric_calls: int | None = None,
) -> list[tuple[str, Request, int]] | None:
    """The items of the task's ``cost_projection`` hook for ``part`` of a run scoring
    ``candidates`` (None: the task has no hook). ``demos`` (``--demos K``) and ``max_metric_calls``
    are passed only with a demo phase, so a task whose hook takes neither is asked as before; with
    one, they change the demo phase and the final report (its pick is tested with its demos)."""
    hook = getattr(task, "cost_projection", None)
    if not callable(hook):
        return None
    run = {"demos": demos, "max_metric_calls": max_metric_calls} if demos else {}
    return list(hook(candidates, part=part, **run))


def hold_final_report(
    task: Task,
    budget: Budget,
    candidates: int,
    *,
    demos: int | None = None,
    max_metric_calls: int | None = None,
) -> dict[str, Any] | None:
    """Hold the projected cost of a final report over ``candidates`` candidates, after a demo phase
    of ``demos`` K under ``max_metric_calls`` when given (None: nothing held, without limits or a
    projection)."""
    if not budget.has_limits():
        return None
    items = task_cost_items(task, candidates, "final", demos=demos, max_metric_calls=max_metric_calls)
    return None if items is None else hold_projected(budget, items, "the final report")


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
