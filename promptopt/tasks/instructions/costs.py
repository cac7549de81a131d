"""What an instruction search will ask its models: every scorer and judge request, projected.

Why: a run's cost is mostly not the optimizer's. Each candidate instruction is answered on every
training example by the scorer, each answer may be judged or read again by an extraction turn,
the demo phase (``--demos K``) scores instruction × demo-set pairs with longer prompts, and the
final report scores a validation shortlist and the test split. The CLI prints this projection
before a run, and the OPRO loop holds the final report's share of a budget while it searches (so
a run stopped by its budget can still report its best instruction on the test split).

:func:`cost_projection` returns ``(model name, a typical request, how many)`` items, per part of
the run (:data:`PARTS`, in the order a run spends them):

- ``scorer``: ``candidates`` × train size answers. With ``scoring="racing"`` this is an upper
  bound (a race stops hopeless candidates early). A metric that ``needs_baseline`` (the pairwise
  judge) also needs the answer without any instruction, once per training example (cached after).
- ``judge``: the judging of those answers, read from ``task.metric``: ``None`` (``auto``) or a
  rule has no judge; a metric named ``judge:rubric`` costs its samples per answer plus one
  follow-up each (asked only when a judgement ends without a score: an upper bound);
  ``judge:pairwise`` two per answer (both orders); ``judge:responsive`` one yes/no per answer;
  an ``all:A&B`` metric the sum of its components'. Another metric's judge calls are not known
  and not projected.
- ``extraction``: the answer-extraction turns of those answers (``extract_answer``,
  :mod:`promptopt.evaluators.answers.extraction`), one more scorer request per answer: ``always``
  asks it for every answer; ``undecided`` only for an answer the rules cannot read, which is not
  known before the run, so it is projected for every answer too (an upper bound); ``never``: none.
- ``demos``: the demo phase of ``--demos K`` (:mod:`promptopt.optimizers.opro.demo_phase`, with
  :func:`~promptopt.optimizers.demos.asearch_demos`'s own settings): the bootstrap (the best
  instruction on the training split; usually memoised from the search), the default pair (no
  demos) on validation, then up to ``trials`` minibatch trials and a full validation after every
  ``full_eval_every`` of them (and after the last), those with K demos in the prompt; each
  answer with its baseline, judging and extraction turn as above. With a metric-call limit the
  phase spends at most what the search left of it (:data:`~promptopt.optimizers.metric_calls.SEARCH_SHARE`
  is the search's share, but a search that stops early leaves more), so the trials and full
  evaluations are capped by the whole limit less the bootstrap and the default pair (an upper
  bound). Without ``demos`` (or when the search would refuse: no validation split, too few
  training examples, a limit below its first evaluations) nothing.
- ``final``: validation (``min(val_top_k, candidates)`` × validation size, when the shortlist has
  two or more and there is a validation split) and test ((1 + 1 + ``len(BASELINES)``) × test
  size: the pick, the training best and each baseline), with the judging and extraction turns of
  those answers. After a demo phase the pick is validated alone, with its demos, and tested with
  and without them (``InstructionTask.afinal_report``).

Every count is an upper bound: answers from the request cache cost nothing. Each request is built
through the scorer's own :func:`~promptopt.evaluators.accuracy.build_request` (the prompt program's
position and base system prompt, the task's ``max_tokens``) for every example, with a searched
instruction as long as the longest one the task accepts, so the token estimates bound what the
budget will reserve; a demo is the longest training question with the longest answer it may show
(the scorer's whole ``max_tokens``, or the longest gold answer), a minibatch the training examples
with the most expensive requests; judge and extraction requests are rendered with their own
templates around an answer as long as the scorer's ``max_tokens`` allows.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from promptopt.evaluators.accuracy import build_request
from promptopt.evaluators.answers.extraction import ExtractionMetric, extraction_request
from promptopt.evaluators.answers.grading import infer_kind
from promptopt.evaluators.metrics.judge import judge_question
from promptopt.evaluators.pairwise import JudgeItem
from promptopt.evaluators.rubric import FOLLOW_UP_PROMPT, SCORE_CONSTRAINT
from promptopt.llm.base import Message, Request
from promptopt.llm.budget import estimate_tokens, project_items
from promptopt.prompting import DEMO_SEARCH, Demo
from promptopt.tasks.instructions.datasets import Example
from promptopt.tasks.instructions.validation import BASELINES

if TYPE_CHECKING:
    from promptopt.tasks.instructions.task import InstructionTask

#: One projected item: (model name, a typical request, how many times it is sent).
CostItem = tuple[str, Request, int]


@dataclass(frozen=True)
class RunShape:
    """What the projection needs to know of the run beyond the task: ``candidates`` instructions
    scored, ``demos`` (``--demos K``, 0: no demo phase) and the metric-call limit."""

    candidates: int
    demos: int = 0
    max_metric_calls: int | None = None


def cost_projection(
    task: InstructionTask,
    candidates: int,
    part: str | None = None,
    *,
    demos: int | None = 0,
    max_metric_calls: int | None = None,
) -> list[CostItem]:
    """The requests a run scoring ``candidates`` instructions (then, with ``demos`` K, a demo
    phase under ``max_metric_calls``) makes, as ``(model, request, count)`` items (see the module
    docstring); ``part`` (one of :data:`PARTS`) keeps one part, None all of them."""
    if part is not None and part not in _PARTS:
        raise ValueError(f"unknown cost part {part!r}; choose one of: {', '.join(PARTS)}")
    run = RunShape(max(0, int(candidates)), max(0, int(demos or 0)), max_metric_calls)
    names = PARTS if part is None else (part,)
    return [item for name in names for item in _PARTS[name](task, run)]


# --------------------------------------------------------------------------- the parts


def _scorer_part(task: InstructionTask, run: RunShape) -> list[CostItem]:
    train = task.splits.train
    items = _answers(task, train, _searched(task), run.candidates)
    if getattr(task.metric, "needs_baseline", False):
        items += _answers(task, train, "", 1)
    return items


def _judge_part(task: InstructionTask, run: RunShape) -> list[CostItem]:
    return _judged(task, task.splits.train, run.candidates)


def _extraction_part(task: InstructionTask, run: RunShape) -> list[CostItem]:
    return _extracted(task, task.splits.train, run.candidates)


def _demos_part(task: InstructionTask, run: RunShape) -> list[CostItem]:
    """The demo phase (see the module docstring): bootstrap and default pair without demos, then
    the trials on the costliest minibatch and the full validations, with K demos."""
    train, val = tuple(task.splits.train), tuple(task.splits.val)
    k = run.demos
    if k <= 0 or not val or len(train) <= k:
        return []  # no demo phase, or one that refuses before asking anything
    s = _demo_search_settings()
    boot = len(train) if s["max_bootstrap_examples"] is None else min(len(train), s["max_bootstrap_examples"])
    batch = min(s["minibatch_size"], len(train))
    trials, full_evals = s["trials"], math.ceil(s["trials"] / s["full_eval_every"])
    if run.max_metric_calls is not None:
        left = run.max_metric_calls - boot - len(val)  # after the bootstrap and the default pair
        if left < 0:
            return []  # the search refuses such a limit up front
        # a trial runs only with room for it and a full evaluation after it; its minibatch holds
        # at least ``smallest`` examples (the training split less the set's own, at most K)
        smallest = max(1, min(s["minibatch_size"], len(train) - k))
        trials = min(trials, max(0, left - len(val)) // smallest)
        full_evals = min(math.ceil(trials / s["full_eval_every"]), left // len(val))
    with_demos = _demo_stand_ins(task, k)
    return [
        *_evaluations(task, train, 1, keep=boot),  # the bootstrap (all of train by default)
        *_evaluations(task, val, 1),  # the default pair: the best instruction without demos
        *_evaluations(task, train, trials, with_demos, keep=batch),
        *_evaluations(task, val, full_evals, with_demos),
    ]


def _final_part(task: InstructionTask, run: RunShape) -> list[CostItem]:
    """Validation of the shortlist, then the test split: the pick, the training best and each
    baseline (the same phases as ``InstructionTask.afinal_report``), with their judging and
    extraction turns; after a demo phase the pick with its demos instead."""
    if run.demos > 0:
        return _final_with_demos(task, _demo_stand_ins(task, run.demos))
    splits, items = task.splits, []
    shortlisted = min(task.val_top_k, max(run.candidates, 1))
    if shortlisted >= 2 and splits.val:
        items += _answers(task, splits.val, _searched(task), shortlisted)
        if getattr(task.metric, "needs_baseline", False):
            items += _answers(task, splits.val, "", 1)
        items += _judged(task, splits.val, shortlisted)
        items += _extracted(task, splits.val, shortlisted)
    if splits.test:
        items += _answers(task, splits.test, _searched(task), 2)  # the pick and the training best
        for _, instruction in BASELINES:  # "" among them: the pairwise judge's baseline too
            items += _answers(task, splits.test, instruction, 1)
        items += _judged(task, splits.test, 2 + len(BASELINES))
        items += _extracted(task, splits.test, 2 + len(BASELINES))
    return items


def _final_with_demos(task: InstructionTask, demos: Sequence[Demo]) -> list[CostItem]:
    """The final report of a demo phase's pick: validated alone with its demos, tested with them
    (a batch of its own), then without them beside each baseline."""
    splits = task.splits
    items = _evaluations(task, splits.val, 1, demos) if splits.val else []
    if splits.test:
        items += _evaluations(task, splits.test, 1, demos)
        items += _answers(task, splits.test, _searched(task), 1)  # the pick without its demos
        for _, instruction in BASELINES:
            items += _answers(task, splits.test, instruction, 1)
        items += _judged(task, splits.test, 1 + len(BASELINES))
        items += _extracted(task, splits.test, 1 + len(BASELINES))
    return items


_PARTS: Mapping[str, Callable[[InstructionTask, RunShape], list[CostItem]]] = {
    "scorer": _scorer_part,
    "judge": _judge_part,
    "extraction": _extraction_part,
    "demos": _demos_part,
    "final": _final_part,
}
#: the parts of a run's cost this projection names (``cost_projection(..., part=...)``), in order
PARTS: tuple[str, ...] = tuple(_PARTS)


# --------------------------------------------------------------------------- requests


def _searched(task: InstructionTask) -> str:
    """A stand-in for a searched instruction: as long as the longest the task accepts (or the
    longest starting one), so its token estimate bounds a real candidate's."""
    longest = max((len(s) for s in task.initial), default=0)
    return "x" * max(task.max_instruction_chars, longest)


def _evaluations(
    task: InstructionTask,
    examples: Sequence[Example],
    count: int,
    demos: Sequence[Demo] = (),
    keep: int | None = None,
) -> list[CostItem]:
    """``count`` evaluations of a searched instruction with ``demos`` on ``examples`` (each one
    batch: its answers, the baseline answers a pairwise judge asks with them, the judging and the
    extraction turns); ``keep``: each evaluation is on that many of ``examples``, the costliest."""
    if count <= 0 or not examples:
        return []
    instruction = _searched(task)
    builds: list[Callable[[Sequence[Example]], list[CostItem]]] = [
        lambda exs: _answers(task, exs, instruction, count, demos),
        lambda exs: _judged(task, exs, count),
        lambda exs: _extracted(task, exs, count),
    ]
    if getattr(task.metric, "needs_baseline", False):
        builds.append(lambda exs: _answers(task, exs, "", count, demos))
    return [item for build in builds for item in _costliest(build, examples, keep)]


def _costliest(
    build: Callable[[Sequence[Example]], list[CostItem]], examples: Sequence[Example], keep: int | None
) -> list[CostItem]:
    """``build``'s items for the ``keep`` examples whose items cost the most tokens (all of them
    for None): a minibatch drawn at random costs no more than these."""
    if keep is None or keep >= len(examples):
        return build(examples)
    groups = [build([ex]) for ex in examples]
    groups.sort(key=lambda items: project_items(items).tokens, reverse=True)
    return [item for items in groups[: max(0, keep)] for item in items]


def _answers(
    task: InstructionTask,
    examples: Sequence[Example],
    instruction: str,
    count: int,
    demos: Sequence[Demo] = (),
) -> list[CostItem]:
    """One scorer request per example with ``instruction`` (after ``demos``), each sent ``count`` times."""
    if count <= 0:
        return []
    scorer = task.scorer.name
    system = task.program.system_prompt
    return [
        (
            scorer,
            build_request(
                ex, instruction, task.position, max_tokens=task.max_tokens, system=system, demos=demos
            ),
            count,
        )
        for ex in examples
    ]


def _demo_stand_ins(task: InstructionTask, k: int) -> tuple[Demo, ...]:
    """``k`` demos as long as any the demo phase can build: the longest training question with
    the longest answer a demo may show (the scorer's own, up to ``max_tokens``, or a gold one)."""
    train = task.splits.train
    if not train or k <= 0:
        return ()
    question = max((ex.input for ex in train), key=estimate_tokens)
    golds = [str(ex.target) for ex in train if ex.target is not None]
    answer = max([_answer_filler(task.max_tokens), *golds], key=estimate_tokens)
    return (Demo(question, answer),) * k


def _demo_search_settings() -> dict[str, Any]:
    """The demo search's settings the demo phase leaves at their defaults (trials, minibatch
    size, full-evaluation interval, bootstrap size): ``prompting.DEMO_SEARCH``, the defaults
    ``asearch_demos`` itself runs with, so the projection follows them."""
    names = ("trials", "minibatch_size", "full_eval_every", "max_bootstrap_examples")
    return {name: getattr(DEMO_SEARCH, name) for name in names}


def _judged(task: InstructionTask, examples: Sequence[Example], answers: int) -> list[CostItem]:
    """The judge requests for ``answers`` answers to each example (none without a known judge)."""
    if answers <= 0:
        return []
    answer = _answer_filler(task.max_tokens)
    return [
        (model, req, answers * n)
        for ex in examples
        for model, req, n in _judge_requests(task.metric, ex, answer)
    ]


def _judge_requests(metric: Any, example: Example, answer: str) -> list[tuple[str, Request, int]]:
    """(model, request, count) for judging one answer under ``metric``: a known judge's requests,
    an ``all:`` metric's components' requests together, nothing for a rule."""
    components = getattr(metric, "components", None)
    if components is not None:  # all:A&B — every component judges the same answer
        return [item for _, part in components for item in _judge_requests(part, example, answer)]
    project = _JUDGES.get(str(getattr(metric, "name", "")))
    return [] if project is None else list(project(metric, example, answer))


def _extracted(task: InstructionTask, examples: Sequence[Example], answers: int) -> list[CostItem]:
    """The answer-extraction turns of ``answers`` answers to each example, one each (none when the
    task extracts ``never``); ``undecided`` is projected as ``always`` (an upper bound)."""
    metric = _extraction_metric(task)
    if metric is None or answers <= 0:
        return []
    scorer = task.scorer.name
    answer = _answer_filler(task.max_tokens)
    return [
        (
            scorer,
            extraction_request(
                ex, answer, _extraction_kind(metric, ex), max_tokens=metric.max_tokens, seed=metric.seed
            ),
            answers,
        )
        for ex in examples
    ]


def _extraction_metric(task: InstructionTask) -> ExtractionMetric | None:
    """The extraction metric the task's scoring really uses (its kind, seed and token limit), or
    None when it extracts ``never``."""
    metric = task.scoring_metric()  # the one place scoring picks its metric
    return metric if isinstance(metric, ExtractionMetric) and metric.mode != "never" else None


def _extraction_kind(metric: ExtractionMetric, example: Example) -> Any:
    """The answer kind the extraction turn asks for (its trigger and token limit): the metric's,
    else the example's, else inferred from its gold answer (as the metric does)."""
    kind = metric.kind or getattr(example, "kind", None)
    return kind or infer_kind([str(example.target or "")], [str(example.input)])


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


def _responsive_requests(metric: Any, example: Example, answer: str) -> Iterable[tuple[Request, int]]:
    """The responsive gate's one yes/no request per answer."""
    return [(metric.request(example, answer), 1)]


def _on_judge(
    project: Callable[[Any, Example, str], Iterable[tuple[Request, int]]], *, own_llm: bool = False
) -> Callable[[Any, Example, str], Iterable[tuple[str, Request, int]]]:
    """A projection of one metric kind as (model, request, count): rubric and pairwise metrics
    hold their judge in ``metric.judge``; the responsive gate asks its ``metric.llm`` itself."""

    def requests(metric: Any, example: Example, answer: str) -> Iterable[tuple[str, Request, int]]:
        judge = metric if own_llm else metric.judge
        model = (metric.llm if own_llm else judge.llm).name
        return [(model, req, n) for req, n in project(judge, example, answer)]

    return requests


#: judge metric name → the requests judging one answer costs (see the module docstring)
_JUDGES: Mapping[str, Callable[[Any, Example, str], Iterable[tuple[str, Request, int]]]] = {
    "judge:rubric": _on_judge(_rubric_requests),
    "judge:pairwise": _on_judge(_pairwise_requests),
    "judge:responsive": _on_judge(_responsive_requests, own_llm=True),
}
