"""Score instructions on examples with a scorer LLM: concurrent, cached, failure-tolerant.

Why one batch for everything: :meth:`LLM.agenerate` gets all (instruction × example) requests
at once, so each backend parallelises the way it can (HTTP concurrency, vLLM batching) and the
request cache can answer what it already holds. Requests are temperature 0 with a fixed seed, so
the request cache (``promptopt.llm.cache``, added by ``build_llm``) keys each one on exactly
(instruction placed at its position, example, scorer model, sampling settings): an instruction
scored before — in this run or an earlier one — costs no backend call.

Failures: a request that fails (``LLMError``, returned in place) counts as a wrong answer, and
``coverage`` = answered / total says how many got through. Every instruction is scored on every
example: leaving failures out would score an instruction that makes the scorer time out on the
examples it *could* answer, a smaller and easier set than its rivals'. When every request of an
instruction failed there is nothing to score: ``accuracy`` is None and ``error`` says why (the
caller can retry). Any other exception is a bug and propagates. OPRO's own evaluation retries a
failed call and stops on a persistent failure, so its scores never have a gap; here a failure
that outlasts the backend's retries is recorded and scored as wrong instead of ending the run.

Reusable by benches: :func:`aevaluate_many` / :func:`evaluate` need only an LLM, examples with
``input`` / ``target`` and a grader ``(response, example) -> Graded``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from promptopt.evaluators.answers import AnswerKind, Graded, grade
from promptopt.llm.base import LLM, Completion, LLMError, Message, Request, raise_if_unreachable, run_sync
from promptopt.prompting import apply_instruction, check_position


class ExampleLike(Protocol):
    """What the evaluator needs of an example (``promptopt.tasks.instructions.datasets.Example`` has it)."""

    @property
    def id(self) -> str: ...
    @property
    def input(self) -> str: ...
    @property
    def target(self) -> str: ...
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
        example.target,
        example.kind,
        options=example.options,
        accepted=example.accepted,
        question=example.input,
    )


@dataclass(frozen=True)
class ExampleRecord:
    """One example's outcome. ``correct`` is None when the request failed (``error`` says why)."""

    example_id: str
    correct: bool | None
    prediction: str | None = None
    response: str | None = None
    error: str | None = None
    cached: bool = False


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
) -> Request:
    """The scorer's request for one example: the question as a user message with the
    instruction placed by :func:`promptopt.prompting.apply_instruction` (the same placement
    ``AlignedLLM`` uses when the instruction is deployed). Greedy (temperature 0)."""
    messages: list[Message] = []
    if system is not None:
        messages.append(Message("system", system))
    messages.append(Message("user", example.input))
    return Request(
        messages=apply_instruction(messages, instruction, position),
        temperature=0.0,
        max_tokens=max_tokens,
        seed=seed,
    )


def _evaluation(
    instruction: str,
    position: str,
    examples: Sequence[ExampleLike],
    results: Sequence[Any],
    grader: Grader,
) -> Evaluation:
    records = []
    for ex, res in zip(examples, results, strict=True):
        if isinstance(res, LLMError):
            msg = f"{type(res).__name__}: {' '.join(str(res).split())[:200]}"
            records.append(ExampleRecord(ex.id, None, error=msg))
            continue
        assert isinstance(res, Completion)
        text = res.text
        graded = grader(text, ex)
        records.append(ExampleRecord(ex.id, graded.correct, graded.prediction, text, cached=res.cached))
    return _from_records(instruction, position, records)


def _from_records(instruction: str, position: str, records: Sequence[ExampleRecord]) -> Evaluation:
    failed = sum(r.correct is None for r in records)
    correct = sum(r.correct is True for r in records)
    if failed == len(records):
        first_error = next((r.error for r in records if r.error), None)
        error = (
            f"all {len(records)} scorer requests failed; first: {first_error}" if records else "no examples"
        )
        return Evaluation(instruction, position, None, 0, len(records), failed, tuple(records), error)
    # Every example is in the denominator: a failed request is a wrong answer (see module doc).
    return Evaluation(
        instruction, position, 100.0 * correct / len(records), correct, len(records), failed, tuple(records)
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
    grader: Grader = grade_example,
    max_tokens: int = 400,
    seed: int | None = 0,
    system: str | None = None,
) -> list[Evaluation]:
    """Evaluate several instructions on the same examples in one concurrent batch.

    Duplicate instructions are sent once. Returns one :class:`Evaluation` per instruction, in
    order.
    """
    check_position(position)
    unique = list(dict.fromkeys(instructions))
    requests = [
        build_request(ex, ins, position, max_tokens=max_tokens, seed=seed, system=system)
        for ins in unique
        for ex in examples
    ]
    results = await llm.agenerate(requests, return_exceptions=True) if requests else []
    raise_if_unreachable(results)
    by_instruction: dict[str, Evaluation] = {}
    n = len(examples)
    for k, ins in enumerate(unique):
        by_instruction[ins] = _evaluation(ins, position, examples, results[k * n : (k + 1) * n], grader)
    return [by_instruction[ins] for ins in instructions]


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
