"""Score instructions on examples with a scorer LLM: concurrent, cached, failure-tolerant.

Why one batch for everything: :meth:`LLM.agenerate` gets all (instruction × example) requests
at once, so each backend parallelises the way it can (HTTP concurrency, vLLM batching) and the
request cache can answer what it already holds. Requests are temperature 0 with a fixed seed, so
the request cache (``promptopt.llm.cache``, added by ``build_llm``) keys each one on exactly
(instruction placed at its position, example, scorer model, sampling settings): an instruction
scored before — in this run or an earlier one — costs no backend call.

Failures: a batch is scored on complete evidence or not at all (:mod:`promptopt.llm.outage`).
Calls that failed from an outage (connection, timeout, 5xx, garbage; judge calls likewise) are
asked again, and if any still fail the batch raises ``LLMOutageError``: the caller aborts the step
and ``--resume`` redoes it (the answers that came back are cached). What is left as a failed
record is a request the backend *rejected* (``LLMBadRequestError``, e.g. an instruction that pushes
the prompt over the context window): it counts as a wrong answer, and ``coverage`` = answered /
total says how many got through. Every instruction is scored on every example: leaving rejected
requests out would score an instruction on a smaller and easier set than its rivals'. When every
request of an instruction was rejected there is nothing to score: ``accuracy`` is None and
``error`` says why. Any other exception is a bug and propagates. OPRO's own evaluation retries a
failed call and stops on a persistent failure; so does this one, except that a deterministic
rejection is a score, not a stop.

Metrics: every answer is scored by a :class:`~promptopt.evaluators.metrics.Metric` (the user's
function, a built-in rule, or a judge), as one batch per call so a judge's requests go out
concurrently. A score is a value in [0, 1]; ``accuracy`` is 100 × the mean value over all examples
(for 0/1 rules, the paper's accuracy). A metric that compares against the answer *without* the
instruction (``needs_baseline``: the pairwise judge) gets those answers from the same batch of
scorer requests (the empty instruction, cached like any other). A score with ``error`` (a judge call
that failed) counts as a failed request, like a scorer failure. The default metric is ``auto``:
the built-in grader for the example's answer kind.

Reusable by benches: :func:`aevaluate_many` / :func:`evaluate` need only an LLM, examples with
``input`` / ``target`` and a metric (or the older grader ``(response, example) -> Graded``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from promptopt.evaluators.answers import AnswerKind, Graded, grade
from promptopt.evaluators.metrics.base import Metric, MetricItem, Score, SyncMetric, ascore_items
from promptopt.llm.base import LLM, Completion, LLMError, Message, Request, run_sync
from promptopt.llm.outage import agenerate_complete, outage_error, reask
from promptopt.prompting import Demo, apply_demos, apply_instruction, check_position


class ExampleLike(Protocol):
    """What the evaluator needs of an example (``promptopt.tasks.instructions.datasets.Example`` has it)."""

    @property
    def id(self) -> str: ...
    @property
    def input(self) -> str: ...
    @property
    def target(self) -> str | None: ...
    @property
    def kind(self) -> AnswerKind: ...
    @property
    def options(self) -> tuple[tuple[str, str], ...]: ...
    @property
    def accepted(self) -> tuple[str, ...]: ...


Grader = Callable[[str, Any], Graded]


def grade_example(response: str, example: ExampleLike) -> Graded:
    """The default grader: :func:`promptopt.evaluators.answers.grade` with the example's kind and
    its input as the question (a yes/no answer may restate the question instead of saying yes)."""
    return grade(
        response,
        example.target or "",
        example.kind,
        options=example.options,
        accepted=example.accepted,
        question=example.input,
    )


def grader_metric(grader: Grader, name: str = "grader") -> Metric:
    """An older ``(response, example) -> Graded`` grader as a metric (1 right, 0 wrong)."""

    def score(example: Any, answer: str) -> Score:
        g = grader(answer, example)
        return Score(1.0 if g.correct else 0.0, prediction=g.prediction)

    return SyncMetric(name, score)


def default_metric() -> Metric:
    """``auto``: the built-in grader for each example's answer kind (today's behaviour)."""
    from promptopt.evaluators.metrics.registry import resolve_metric

    return resolve_metric("auto")


@dataclass(frozen=True)
class ExampleRecord:
    """One example's outcome. ``correct`` is None when the request failed (``error`` says why);
    ``value`` is the metric's value in [0, 1] (None when failed), ``feedback`` its reason."""

    example_id: str
    correct: bool | None
    prediction: str | None = None
    response: str | None = None
    error: str | None = None
    cached: bool = False
    value: float | None = None
    feedback: str | None = None

    @property
    def score(self) -> float:
        """The value counted in the mean: a failed request counts 0 (see the module docstring)."""
        if self.value is not None:
            return self.value
        return 1.0 if self.correct else 0.0


@dataclass(frozen=True)
class Evaluation:
    """An instruction's accuracy (0–100, over *all* examples: a failed request counts as wrong),
    its coverage (answered / total) and its per-example records."""

    instruction: str
    position: str
    accuracy: float | None
    correct: int
    total: int
    failed: int
    records: tuple[ExampleRecord, ...] = field(default=(), repr=False)
    error: str | None = None

    @property
    def answered(self) -> int:
        return self.total - self.failed

    @property
    def value_sum(self) -> float:
        """The sum of the per-example values (failed ones count 0): ``accuracy`` × total / 100."""
        return sum(r.score for r in self.records)

    @property
    def coverage(self) -> float:
        """The share of examples whose request got an answer (1.0 when none failed)."""
        return self.answered / self.total if self.total else 0.0

    @property
    def no_answer(self) -> int:
        """Answered examples from which no answer could be read (format failures, not errors)."""
        return sum(r.correct is not None and r.prediction is None for r in self.records)

    @property
    def cached(self) -> int:
        """How many examples were answered from the request cache."""
        return sum(r.cached for r in self.records)

    def correctness(self) -> str:
        """Per-example outcome as one compact string: ``1`` right, ``0`` wrong, ``x`` failed."""
        return "".join("x" if r.correct is None else "1" if r.correct else "0" for r in self.records)

    def summary(self) -> dict[str, Any]:
        """JSON-able numbers (no per-example text) for journals and reports."""
        out: dict[str, Any] = {
            "instruction": self.instruction,
            "position": self.position,
            "accuracy": self.accuracy,
            "correct": self.correct,
            "total": self.total,
            "failed": self.failed,
            "coverage": round(self.coverage, 4),
        }
        if self.error:
            out["error"] = self.error
        return out


def build_request(
    example: ExampleLike,
    instruction: str,
    position: str,
    *,
    max_tokens: int = 400,
    seed: int | None = 0,
    system: str | None = None,
    demos: Sequence[Demo] = (),
) -> Request:
    """The scorer's request for one example: the question as a user message with the
    instruction placed by :func:`promptopt.prompting.apply_instruction` (the same placement
    ``AlignedLLM`` uses when the instruction is deployed), after the ``demos`` as earlier turns
    (:func:`promptopt.prompting.apply_demos`). Greedy (temperature 0)."""
    messages: list[Message] = []
    if system is not None:
        messages.append(Message("system", system))
    messages.append(Message("user", example.input))
    return Request(
        messages=apply_instruction(apply_demos(messages, demos), instruction, position),
        temperature=0.0,
        max_tokens=max_tokens,
        seed=seed,
    )


def _failed_record(example: Any, error: BaseException | str) -> ExampleRecord:
    text = error if isinstance(error, str) else _error_text(error)
    return ExampleRecord(example.id, None, error=text)


def _scored_record(example: Any, completion: Completion, score: Score) -> ExampleRecord:
    if score.error is not None:
        return ExampleRecord(
            example.id, None, response=completion.text, error=score.error, cached=completion.cached
        )
    return ExampleRecord(
        example.id,
        score.correct,
        score.prediction,
        completion.text,
        cached=completion.cached,
        value=score.value,
        feedback=score.feedback,
    )


def _from_records(instruction: str, position: str, records: Sequence[ExampleRecord]) -> Evaluation:
    failed = sum(r.correct is None for r in records)
    correct = sum(r.correct is True for r in records)
    total_value = sum(r.score for r in records if r.correct is not None)
    if failed == len(records):
        first_error = next((r.error for r in records if r.error), None)
        error = (
            f"all {len(records)} scorer requests failed; first: {first_error}" if records else "no examples"
        )
        return Evaluation(instruction, position, None, 0, len(records), failed, tuple(records), error)
    # Every example is in the denominator: a failed request is a wrong answer (see module doc).
    return Evaluation(
        instruction,
        position,
        100.0 * total_value / len(records),
        correct,
        len(records),
        failed,
        tuple(records),
    )


def combine(parts: Sequence[Evaluation]) -> Evaluation:
    """One instruction's evaluations on disjoint example slices as one evaluation (records in the
    given order). Partial scoring (:mod:`promptopt.evaluators.racing`) grows an evaluation slice by
    slice; the combined accuracy is exactly what one evaluation on the union would give."""
    if not parts:
        raise ValueError("combine needs at least one evaluation")
    first = parts[0]
    if any(p.instruction != first.instruction or p.position != first.position for p in parts):
        raise ValueError("combine: evaluations of different instructions or positions")
    return _from_records(first.instruction, first.position, [r for p in parts for r in p.records])


async def aevaluate_many(
    llm: LLM,
    instructions: Sequence[str],
    examples: Sequence[ExampleLike],
    *,
    position: str = "Q_begin",
    grader: Grader | None = None,
    metric: Metric | None = None,
    max_tokens: int = 400,
    seed: int | None = 0,
    system: str | None = None,
    demos: Sequence[Demo] = (),
) -> list[Evaluation]:
    """Evaluate several instructions on the same examples in one concurrent batch of scorer
    requests, then one batch of metric calls.

    Duplicate instructions are sent once. ``metric`` (default ``auto``, or ``grader`` for the older
    grader form) scores every answer; one that ``needs_baseline`` also gets the answer without the
    instruction (asked in the same batch). ``demos`` (few-shot turns) go before every question.
    Returns one :class:`Evaluation` per instruction, in order.
    """
    check_position(position)
    if metric is None:
        metric = grader_metric(grader) if grader is not None else default_metric()
    unique = list(dict.fromkeys(instructions))
    needs_baseline = bool(getattr(metric, "needs_baseline", False))
    asked = unique + ([""] if needs_baseline and "" not in unique else [])
    requests = [
        build_request(ex, ins, position, max_tokens=max_tokens, seed=seed, system=system, demos=demos)
        for ins in asked
        for ex in examples
    ]
    results = await agenerate_complete(llm, requests, what="scorer")
    n = len(examples)
    answers = {ins: results[k * n : (k + 1) * n] for k, ins in enumerate(asked)}
    baseline = answers.get("")
    items: list[MetricItem] = []
    where: list[tuple[str, int]] = []
    for ins in unique:
        for j, (ex, res) in enumerate(zip(examples, answers[ins], strict=True)):
            if isinstance(res, Completion):
                base = baseline[j] if baseline is not None else None
                if needs_baseline and not isinstance(base, Completion):
                    continue  # the baseline answer failed: this example cannot be compared
                items.append(MetricItem(ex, res.text, base.text if isinstance(base, Completion) else None))
                where.append((ins, j))
    scores = dict(zip(where, await _score_complete(metric, items), strict=True))
    by_instruction: dict[str, Evaluation] = {}
    for ins in unique:
        records = []
        for j, (ex, res) in enumerate(zip(examples, answers[ins], strict=True)):
            if isinstance(res, LLMError):
                records.append(_failed_record(ex, res))
            elif not isinstance(res, Completion):  # not a model failure: a bug, never a score
                raise res if isinstance(res, BaseException) else TypeError(f"unexpected result {res!r}")
            elif (ins, j) not in scores:
                base = baseline[j] if baseline is not None else None
                records.append(_failed_record(ex, f"baseline answer failed: {_error_text(base)}"))
            else:
                assert isinstance(res, Completion)
                records.append(_scored_record(ex, res, scores[(ins, j)]))
        by_instruction[ins] = _from_records(ins, position, records)
    return [by_instruction[ins] for ins in instructions]


async def _score_complete(metric: Metric, items: Sequence[MetricItem]) -> list[Score]:
    """Score ``items``; items whose metric call failed (``Score.error``: a judge call) are scored
    again up to the re-ask rounds, and any still failing make the batch an outage (see
    :mod:`promptopt.llm.outage`): an example is never counted on a judge that did not answer."""
    scores = await ascore_items(metric, items)

    async def redo(again: list[int]) -> list[Score]:
        return await ascore_items(metric, [items[i] for i in again])

    await reask(scores, lambda s: s.error is not None, redo)
    failed = [s for s in scores if s.error is not None]
    if failed:
        raise outage_error(len(failed), len(scores), LLMError(failed[0].error), f"metric {metric.name!r}")
    return scores


def _error_text(res: Any) -> str:
    if isinstance(res, BaseException):
        return f"{type(res).__name__}: {' '.join(str(res).split())[:200]}"
    return "no answer"


async def aevaluate(
    llm: LLM,
    instruction: str,
    examples: Sequence[ExampleLike],
    **options: Any,
) -> Evaluation:
    """Evaluate one instruction (see :func:`aevaluate_many` for the options)."""
    return (await aevaluate_many(llm, [instruction], examples, **options))[0]


def evaluate(llm: LLM, instruction: str, examples: Sequence[ExampleLike], **options: Any) -> Evaluation:
    """Sync door to :func:`aevaluate` for scripts and benches."""
    return run_sync(aevaluate(llm, instruction, examples, **options))
