"""What an instruction search will ask its models: every scorer and judge request, projected.

Why: a run's cost is mostly not the optimizer's. Each candidate instruction is answered on every
training example by the scorer, each answer may be judged, and the final report scores a
validation shortlist and the test split. The CLI prints this projection before a run, and the
OPRO loop holds the final report's share of a budget while it searches (so a run stopped by its
budget can still report its best instruction on the test split).

:func:`cost_projection` returns ``(model name, a typical request, how many)`` items, per part of
the run (:data:`promptopt.llm.budget.COST_PARTS`):

- ``scorer``: ``candidates`` × train size answers. With ``scoring="racing"`` this is an upper
  bound (a race stops hopeless candidates early). A metric that ``needs_baseline`` (the pairwise
  judge) also needs the answer without any instruction, once per training example (cached after).
- ``judge``: the judging of those answers, read from ``task.metric``: ``None`` (``auto``) or a
  rule has no judge; a metric named ``judge:rubric`` costs its samples per answer plus one
  follow-up each (asked only when a judgement ends without a score: an upper bound);
  ``judge:pairwise`` two per answer (both orders). Another metric's judge calls are not known
  and not projected.
- ``final``: validation (``min(val_top_k, candidates)`` × validation size, when the shortlist has
  two or more and there is a validation split) and test ((1 + 1 + ``len(BASELINES)``) × test
  size: the pick, the training best and each baseline), with the judging of those answers.

Every count is an upper bound: answers from the request cache cost nothing. Each request is built
through the scorer's own :func:`~promptopt.evaluators.accuracy.build_request` (the prompt program's
position and base system prompt, the task's ``max_tokens``) for every example, with a searched
instruction as long as the longest one the task accepts, so the token estimates bound what the
budget will reserve; judge requests are rendered with the judge's own template around an answer
as long as the scorer's ``max_tokens`` allows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from promptopt.evaluators.accuracy import build_request
from promptopt.evaluators.metrics.judge import judge_question
from promptopt.evaluators.pairwise import JudgeItem
from promptopt.evaluators.rubric import FOLLOW_UP_PROMPT, SCORE_CONSTRAINT
from promptopt.llm.base import Message, Request
from promptopt.llm.budget import COST_PARTS
from promptopt.tasks.instructions.datasets import Example
from promptopt.tasks.instructions.validation import BASELINES

if TYPE_CHECKING:
    from promptopt.tasks.instructions.task import InstructionTask

#: One projected item: (model name, a typical request, how many times it is sent).
CostItem = tuple[str, Request, int]


def cost_projection(task: InstructionTask, candidates: int, part: str | None = None) -> list[CostItem]:
    """The requests a run scoring ``candidates`` instructions makes, as ``(model, request,
    count)`` items (see the module docstring); ``part`` (``scorer``, ``judge`` or ``final``) keeps
    one part, None all of them."""
    if part is not None and part not in _PARTS:
        raise ValueError(f"unknown cost part {part!r}; choose one of: {', '.join(COST_PARTS)}")
    candidates = max(0, int(candidates))
    names = COST_PARTS if part is None else (part,)
    return [item for name in names for item in _PARTS[name](task, candidates)]


# --------------------------------------------------------------------------- the parts


def _scorer_part(task: InstructionTask, candidates: int) -> list[CostItem]:
    train = task.splits.train
    items = _answers(task, train, _searched(task), candidates)
    if getattr(task.metric, "needs_baseline", False):
        items += _answers(task, train, "", 1)
    return items


def _judge_part(task: InstructionTask, candidates: int) -> list[CostItem]:
    return _judged(task, task.splits.train, candidates)


def _final_part(task: InstructionTask, candidates: int) -> list[CostItem]:
    """Validation of the shortlist, then the test split: the pick, the training best and each
    baseline (the same phases as ``InstructionTask.afinal_report``), with their judging."""
    splits, items = task.splits, []
    shortlisted = min(task.val_top_k, max(candidates, 1))
    if shortlisted >= 2 and splits.val:
        items += _answers(task, splits.val, _searched(task), shortlisted)
        if getattr(task.metric, "needs_baseline", False):
            items += _answers(task, splits.val, "", 1)
        items += _judged(task, splits.val, shortlisted)
    if splits.test:
        items += _answers(task, splits.test, _searched(task), 2)  # the pick and the training best
        for _, instruction in BASELINES:  # "" among them: the pairwise judge's baseline too
            items += _answers(task, splits.test, instruction, 1)
        items += _judged(task, splits.test, 2 + len(BASELINES))
    return items


_PARTS: Mapping[str, Callable[[InstructionTask, int], list[CostItem]]] = {
    "scorer": _scorer_part,
    "judge": _judge_part,
    "final": _final_part,
}


# --------------------------------------------------------------------------- requests


def _searched(task: InstructionTask) -> str:
    """A stand-in for a searched instruction: as long as the longest the task accepts (or the
    longest starting one), so its token estimate bounds a real candidate's."""
    longest = max((len(s) for s in task.initial), default=0)
    return "x" * max(task.max_instruction_chars, longest)


def _answers(
    task: InstructionTask, examples: Sequence[Example], instruction: str, count: int
) -> list[CostItem]:
    """One scorer request per example with ``instruction`` in place, each sent ``count`` times."""
    if count <= 0:
        return []
    scorer = task.scorer.name
    system = task.program.system_prompt
    return [
        (
            scorer,
            build_request(ex, instruction, task.position, max_tokens=task.max_tokens, system=system),
            count,
        )
        for ex in examples
    ]


def _judged(task: InstructionTask, examples: Sequence[Example], answers: int) -> list[CostItem]:
    """The judge requests for ``answers`` answers to each example (none without a known judge)."""
    metric = task.metric
    project = _JUDGES.get(str(getattr(metric, "name", "")))
    if project is None or answers <= 0:
        return []
    judge = metric.judge  # type: ignore[union-attr]
    model = judge.llm.name
    answer = _answer_filler(task.max_tokens)
    return [(model, req, answers * n) for ex in examples for req, n in project(judge, ex, answer)]


def _answer_filler(max_tokens: int) -> str:
    """Text whose token estimate is ``max_tokens``: the longest answer the scorer may give."""
    return "x" * (4 * max_tokens)


def _rubric_requests(judge: Any, example: Example, answer: str) -> Iterable[tuple[Request, int]]:
    """A rubric judgement of one answer (``samples`` of them) and its possible follow-up turn."""
    ask = Request.chat(
        judge.render(judge_question(example), answer),
        temperature=judge.temperature,
        max_tokens=judge.max_tokens,
        seed=judge.seed,
    )
    follow_up = ask.with_(
        messages=(
            *(ask.messages or ()),
            Message("assistant", _answer_filler(judge.max_tokens)),
            Message("user", FOLLOW_UP_PROMPT),
        ),
        max_tokens=8,
        constraint=SCORE_CONSTRAINT,
    )
    return [(ask, judge.samples), (follow_up, judge.samples)]


def _pairwise_requests(judge: Any, example: Example, answer: str) -> Iterable[tuple[Request, int]]:
    """A pairwise comparison of one answer with the answer without instruction: both orders."""
    return [(req, 1) for req in judge.requests([JudgeItem(judge_question(example), answer, answer)])]


#: judge metric name → the requests judging one answer costs (see the module docstring)
_JUDGES: Mapping[str, Callable[[Any, Example, str], Iterable[tuple[Request, int]]]] = {
    "judge:rubric": _rubric_requests,
    "judge:pairwise": _pairwise_requests,
}
