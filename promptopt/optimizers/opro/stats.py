"""Run statistics and the Result of an OPRO run, computed from the history alone.

Why from the history: a resumed run's history equals an uninterrupted run's (see
:mod:`~promptopt.optimizers.opro.history`), so everything derived from it — statistics, the ranked
candidates the task's final report shortlists from, result.json — is equal too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from promptopt.evaluators.stats import bootstrap_mean_ci
from promptopt.optimizers.base import Result, Trial, reaches
from promptopt.optimizers.opro.history import History
from promptopt.tasks.base import Candidate, Task, final_report_async


def search_stats(trials: Sequence[Trial], direction: str, optimum: float | None) -> dict[str, Any]:
    """Counts by status, unique solutions, the first step at the best score and at the optimum,
    and the share of proposals (initial candidates left out) that did not parse or were invalid
    (``None`` before the first proposal): what constrained decoding is measured by."""
    counts: dict[str, int] = {}
    for t in trials:
        counts[t.status] = counts.get(t.status, 0) + 1
    scored = [t for t in trials if t.status in ("scored", "initial") and t.score is not None]
    init = [t.score for t in scored if t.status == "initial"]
    best = None
    if scored:
        best = (min if direction == "min" else max)(float(t.score) for t in scored)  # type: ignore[arg-type]
    hit_steps = [t.step for t in scored if optimum is not None and reaches(direction, t.score, optimum)]  # type: ignore[arg-type]
    proposals = sum(1 for t in trials if t.step > 0)

    def share(status: str) -> float | None:
        return sum(1 for t in trials if t.step > 0 and t.status == status) / proposals if proposals else None

    return {
        "proposals": proposals,
        "unparseable_fraction": share("unparseable"),
        "invalid_fraction": share("invalid"),
        "status_counts": counts,
        "unique_scored": len(scored),
        "unique_proposed": sum(1 for t in trials if t.status == "scored"),
        "initial_best": (min(init) if direction == "min" else max(init)) if init else None,  # type: ignore[type-var]
        "first_step_at_best": None if best is None else min(t.step for t in scored if t.score == best),
        "optimum": optimum,
        "steps_to_optimum": min(hit_steps) if hit_steps else None,
        "validation_evidence": validation_evidence(scored, direction),
    }


def validation_evidence(scored: Sequence[Trial], direction: str) -> dict[str, Any] | None:
    """How clearly the validation examples put the best candidate ahead of the first starting one,
    when the search scored candidates per validation example (the reflective proposer keeps each
    candidate's values in ``info["val"]``); None otherwise, or when the best *is* the start.

    Why: with a small or hard validation set the pick among candidates is noise (measured on IFBench:
    10 validation prompts, every starting instruction at 0 on all of them, candidates 0-30 in steps of
    10), and a user should hear that from the run, not from a held-out test they may not have. The
    difference is the mean per-example difference in points with a seeded bootstrap 95 % interval."""
    with_val = [t for t in scored if isinstance(t.info.get("val"), list) and t.info["val"]]
    start = next((t for t in with_val if t.status == "initial"), None)
    if start is None or direction not in ("max", "min"):
        return None
    pick = (max if direction == "max" else min)(with_val, key=lambda t: float(t.score))  # type: ignore[arg-type]
    if pick is start or pick.text == start.text or len(pick.info["val"]) != len(start.info["val"]):
        return None
    sign = 1.0 if direction == "max" else -1.0
    diffs = [sign * (_num(a) - _num(b)) for a, b in zip(pick.info["val"], start.info["val"], strict=True)]
    lo, hi = bootstrap_mean_ci(diffs, seed=0)
    return {"n": len(diffs), "start": start.score, "best": pick.score,
            "lead": round(100.0 * sum(diffs) / len(diffs), 2), "ci95": [round(lo, 2), round(hi, 2)],
            "above_zero": lo > 0}  # fmt: skip


def validation_warning(evidence: Any) -> str | None:
    """One line when :func:`validation_evidence` leaves the pick in doubt (its interval reaches 0),
    else None: what the run prints and its report shows."""
    if not isinstance(evidence, dict) or evidence.get("above_zero") is not False:
        return None
    lo, hi = evidence["ci95"]
    return (
        f"the validation set does not separate the reported instruction from the starting one: "
        f"{evidence['lead']:+.1f} points [{lo:+.1f}, {hi:+.1f}] (paired, 95 %) on {evidence['n']} examples; "
        "the pick may be noise: use more validation examples"
    )


def _num(x: Any) -> float:
    """A per-example value (None: a failed request, counted 0 as the score counts it)."""
    return 0.0 if x is None else float(x)


def ranked(
    trials: Sequence[Trial], direction: str, candidate_of: Callable[[Trial], Candidate | None]
) -> list[tuple[Candidate, float]]:
    """Every scored candidate, best first, once each (what a task's final report shortlists)."""
    scored = [t for t in trials if t.status in ("scored", "initial") and t.score is not None]
    scored.sort(key=lambda t: t.score, reverse=direction == "max")  # type: ignore[arg-type,return-value]
    out: list[tuple[Candidate, float]] = []
    seen: set[str] = set()
    for t in scored:  # stable sort: among equal scores, the earlier trial first
        c = candidate_of(t)
        if c is not None and c.text not in seen:
            seen.add(c.text)
            out.append((c, float(t.score)))  # type: ignore[arg-type]
    return out


async def final_report(task: Task, hist: History, candidates: dict[str, Candidate]) -> dict[str, Any] | None:
    """The task's final report on the best candidate, with every scored one ranked (``None``
    before any). ``candidates`` maps canonical text to candidate; one missing from it (proposed
    by an earlier process) is re-parsed from its trial's raw text and added."""

    def candidate_of(t: Trial) -> Candidate | None:
        c = candidates.get(t.text)
        if c is None and t.raw is not None:
            parsed = task.parse(t.raw)
            if isinstance(parsed, Candidate):
                c = candidates.setdefault(parsed.text, parsed)
        return c

    best = candidate_of(hist.best) if hist.best is not None else None
    if best is None:
        return None
    # ranked comes from the history: a resumed run reports the same
    return await final_report_async(task, best, ranked(hist.trials, hist.direction, candidate_of))


def make_result(
    hist: History,
    stop_reason: str,
    detail: str,
    usage: dict[str, Any],
    optimum: float | None,
    task_report: dict[str, Any] | None = None,
) -> Result:
    report: dict[str, Any] = {
        "search": search_stats(hist.trials, hist.direction, optimum),
        "stop_detail": detail,
    }
    if task_report is not None:
        report["task"] = task_report
    b = hist.best
    return Result(
        best=b.text if b else None,
        best_score=b.score if b else None,
        history=list(hist.trials),
        stop_reason=stop_reason,
        steps=max(hist.step, 0),
        usage=usage,
        report=report,
    )


def result_json(r: Result, task_name: str, direction: str, params: dict[str, Any]) -> dict[str, Any]:
    """result.json: the Result without the history (the journal holds it), plus what it was run on."""
    d = r.to_json()
    d.pop("history")
    d.update(task=task_name, direction=direction, params=params)
    return d
