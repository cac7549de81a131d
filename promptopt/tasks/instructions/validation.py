"""The final choice and its report: a validation shortlist, then test accuracy vs the baselines.

``InstructionTask.final_report(best)`` shortlists ``best`` plus the next best instructions by
training accuracy that this task object scored (``val_top_k``, default 5), keeps the one with
the best validation accuracy (ties go to the better training score) and reports it on the test
split next to the baselines ("", "Let's think step by step.", "Let's solve the problem.") and,
when it differs, the training best. ``select_on_validation(candidates)`` exposes the pick alone
for callers that keep their own shortlist. With ``num_val=0`` or ``val_top_k<=1`` the training
best is reported as is.

Only full training scores take part: a candidate a race stopped has a partial score and is left
out of the shortlist; validation and test are always scored in full (through the
:class:`~promptopt.tasks.instructions.scoring.ScoreBook`'s memo, so nothing is scored twice).

Demonstrations (``opro run --demos K``): the instruction is validated and tested *with* the demos it
was chosen with, so the reported accuracy is the deployed prompt's; the baselines stay without
demos (the paper's comparison points), and the instruction without its demos is reported beside
it (``best_without_demos``) so the demos' own effect shows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from promptopt.errors import ConfigError
from promptopt.prompting import Demo
from promptopt.tasks.base import Candidate
from promptopt.tasks.instructions.gains import gains_over_others
from promptopt.tasks.instructions.scoring import ScoreBook, instruction_of
from promptopt.tasks.instructions.short_answers import answer_length_report

#: name → instruction; the paper's comparison points.
BASELINES: tuple[tuple[str, str], ...] = (
    ("empty", ""),
    ("step_by_step", "Let's think step by step."),
    ("solve", "Let's solve the problem."),
)


@dataclass(frozen=True)
class ValidationChoice:
    """The candidate with the best validation accuracy, and one row per candidate (given order)."""

    best: Candidate
    rows: list[dict[str, Any]] = field(default_factory=list)


def shortlist(
    best: Candidate | str, scores: Mapping[str, float], partial: set[str], k: int
) -> list[Candidate]:
    """``best`` first, then the other instructions with the highest training accuracy in
    ``scores``, up to ``k`` in all; those a race stopped (``partial``) are left out."""
    best_ins = instruction_of(best)
    # a candidate stopped by a race has a partial score: the final choice is made on full ones
    full = [ins for ins in scores if ins != best_ins and ins not in partial]
    others = sorted(full, key=lambda ins: -scores[ins])
    first = best if isinstance(best, Candidate) else Candidate(best, best)
    return [first, *(Candidate(ins, ins) for ins in others[: max(0, k - 1)])]


async def aselect_on_validation(
    book: ScoreBook,
    candidates: Sequence[Candidate | str],
    train_scores: Mapping[str, float],
    demos: Sequence[Demo] = (),
) -> ValidationChoice:
    """The candidate with the best validation accuracy (ties keep the given order), each with the
    few-shot ``demos``; the rows' ``train_accuracy`` comes from ``train_scores`` (measured without
    demos), and with demos each row says how many (``demos``)."""
    if not candidates:
        raise ConfigError("select_on_validation needs at least one candidate")
    cands = [c if isinstance(c, Candidate) else Candidate(c, c) for c in candidates]
    if not book.splits.val:
        rows = [{"instruction": c.text, "val_accuracy": None, "note": "no validation split"} for c in cands]
        return ValidationChoice(cands[0], rows)
    evals = await book.evaluate("val", book.splits.val, [instruction_of(c) for c in cands], tuple(demos))
    rows = [
        {
            "instruction": c.text,
            "train_accuracy": train_scores.get(instruction_of(c)),
            "val_accuracy": ev.accuracy,
            "correct": ev.correct,
            "total": ev.total,
            "failed": ev.failed,
            "coverage": round(ev.coverage, 4),
            **({"demos": len(demos)} if demos else {}),
        }
        for c, ev in zip(cands, evals, strict=True)
    ]

    def rank(i: int) -> tuple[float, int]:
        acc = evals[i].accuracy
        return (-1.0 if acc is None else acc, -i)

    return ValidationChoice(cands[max(range(len(cands)), key=rank)], rows)


def _mark(record: Any) -> int | float | None:
    """One test example's outcome for the report: None failed, else the metric's value (1 / 0 for
    a right / wrong answer, a fraction for a graded metric such as a judge's 4/5 = 0.8)."""
    if record.correct is None:
        return None
    value = round(float(record.score), 4)
    return int(value) if value in (0.0, 1.0) else value


async def atest_report(
    book: ScoreBook, selected: str, train_best: str, demos: Sequence[Demo] = ()
) -> dict[str, Any]:
    """The ``test``, ``best_minus_best_baseline`` and ``per_example`` entries of the final report:
    ``selected`` as ``best``, ``train_best`` when it differs, and each baseline, all in one batch.
    With ``demos``, ``best`` is ``selected`` with them (asked first, in a batch of its own, so the
    run's answer log keeps the deployed prompt's answers) and ``best_without_demos`` joins the
    batch of the rest. ``per_example`` holds each test example's metric value (None: failed); ``gains`` the
    reported instruction's paired test gain over each other row with its interval (:mod:`.gains`);
    ``answer_lengths`` and, for a reference-free metric answered mostly in a word or three,
    ``warnings`` come from :func:`~promptopt.tasks.instructions.short_answers.answer_length_report`."""
    demos = tuple(demos)
    names = (
        ["best_without_demos" if demos else "best"]
        + (["train_best"] if selected != train_best else [])
        + [n for n, _ in BASELINES]
    )
    instructions = [selected] + ([train_best] if selected != train_best else []) + [i for _, i in BASELINES]
    first = await book.evaluate("test", book.splits.test, [selected], demos) if demos else []
    evals = await book.evaluate("test", book.splits.test, instructions)
    by_name = dict(zip((["best"] if demos else []) + names, [*first, *evals], strict=True))
    base_scores = [by_name[n].accuracy for n, _ in BASELINES if by_name[n].accuracy is not None]
    best_acc = by_name["best"].accuracy
    test = {name: ev.summary() for name, ev in by_name.items()}
    if demos:
        test["best"]["demos"] = len(demos)
    per_example = {name: [_mark(r) for r in ev.records] for name, ev in by_name.items()}
    return {
        "test": test,
        "best_minus_best_baseline": (
            None if best_acc is None or not base_scores else round(best_acc - max(base_scores), 4)
        ),
        "per_example": per_example,
        "gains": gains_over_others(per_example),
        **answer_length_report(
            (r.response for r in by_name["best"].records),
            (r.response for r in by_name["empty"].records),
            book.metric,
        ),
    }
