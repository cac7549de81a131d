"""The answer-extraction turn: when the rules cannot read an answer, ask the scorer to state it.

Why: some responses are undecidable by rules alone (an expression with no value, an opening answer
that the explanation contradicts, a conclusion in words no rule knows, a reasoning cut off by the
token limit). Kojima et al. (2022, "Large Language Models are Zero-Shot Reasoners") read every
answer in a second turn: the question and the model's reasoning are fed back, followed by
"Therefore, the answer (arabic numerals) is", and the continuation is graded. Here that turn is
optional (``extract_answer``, :data:`EXTRACT_MODES`):

- ``never`` (default): the rules alone; an undecided response is not credited (scores are what
  they were without this module);
- ``undecided``: only a response the rules call undecided gets the turn;
- ``always``: every response gets it (Kojima's two-stage prompting).

The turn is one more request to the *scorer* (its budget, its request cache: temperature 0 with
a fixed seed, so a rerun or resume costs nothing), one batch per metric call. The request holds the
example's question and the response, never the candidate instruction: extraction reads what was
answered, and the same answer to the same question is extracted once for every instruction. The
continuation is graded by the same rules as if it followed "The answer is"; when it is itself
undecided (or the scorer rejects the request as malformed, e.g. over its context window), the
rules' reading of the original response stands. A budget refusal propagates (the optimizer aborts
the step); calls that failed from an outage are asked again and then abort the batch
(:func:`promptopt.llm.outage.agenerate_complete`), as every scorer call does.

Model output is untrusted: the continuation is graded by the same regular expressions, nothing is
evaluated.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from promptopt.errors import ConfigError
from promptopt.evaluators.answers.boolean import boolean_vocab
from promptopt.evaluators.answers.grading import ANSWER_KINDS, AnswerKind, Graded, grade, infer_kind
from promptopt.evaluators.metrics.base import MetricError, MetricItem, Score
from promptopt.llm.base import LLM, BudgetExceededError, Completion, LLMError, Message, Request
from promptopt.llm.outage import agenerate_complete

#: ``extract_answer`` modes (``opro run --extract-answer``): name → what it does. The first is the default.
EXTRACT_MODES: Mapping[str, str] = {
    "never": "grade by the rules only; an answer they cannot read is not credited (the default)",
    "undecided": "when the rules cannot settle on one answer, ask the scorer once more "
    "('Therefore, the answer is') and grade its continuation",
    "always": "ask the scorer to state every answer (Kojima et al. 2022's second stage) and grade that",
}
#: Tokens of the continuation per answer kind (Kojima et al. use 32; a sorted word list needs more).
EXTRACTION_MAX_TOKENS: Mapping[str, int] = {"number": 32, "choice": 32, "boolean": 32, "text": 160}
#: The metric specs the turn can wrap: the built-in graders (``None`` is ``auto``).
GRADED_SPECS: frozenset[str | None] = frozenset({None, "auto", *ANSWER_KINDS})


def check_extract_mode(mode: object) -> str:
    """``mode`` if it is an extraction mode, else a ConfigError that lists them."""
    if isinstance(mode, str) and mode in EXTRACT_MODES:
        return mode
    raise ConfigError(f"unknown extract_answer {mode!r}; choose one of: {', '.join(EXTRACT_MODES)}")


def answer_trigger(kind: AnswerKind, target: str = "", options: Sequence[tuple[str, str]] = ()) -> str:
    """Kojima et al.'s answer trigger for ``kind``: "Therefore, the answer (arabic numerals) is",
    "Therefore, among A through E, the answer is", "Therefore, the answer (Yes or No) is". A
    boolean's two words come from the dataset's vocabulary (the target names which one, both are
    shown: nothing of the gold answer leaks)."""
    if kind == "number":
        return "Therefore, the answer (arabic numerals) is"
    if kind == "choice" and options:
        return f"Therefore, among {options[0][0]} through {options[-1][0]}, the answer is"
    if kind == "boolean" and (vocab := boolean_vocab(target)) is not None:
        pos, neg = vocab
        if vocab == ("valid", "invalid"):
            return f"Therefore, the answer ({pos} or {neg}) is"
        return f"Therefore, the answer ({pos.capitalize()} or {neg.capitalize()}) is"
    return "Therefore, the answer is"


def extraction_prompt(
    question: str, response: str, kind: AnswerKind, target: str = "", options: Sequence[tuple[str, str]] = ()
) -> str:
    """The text of the extraction turn: the question, the response and the trigger, in the
    plain "Q: ... A: ..." layout the paper used (one user message: chat APIs cannot prefill an
    assistant turn portably, as in :mod:`promptopt.prompting`'s ``A_begin``)."""
    return f"Q: {question.strip()}\nA: {response.strip()}\n{answer_trigger(kind, target, options)}"


def extraction_request(
    example: Any, response: str, kind: AnswerKind, *, max_tokens: int | None = None, seed: int | None = 0
) -> Request:
    """The scorer request of one extraction turn (greedy, seeded: cached like every scorer call)."""
    target = str(getattr(example, "target", "") or "")
    options = tuple(getattr(example, "options", ()) or ())
    prompt = extraction_prompt(str(getattr(example, "input", "")), response, kind, target, options)
    return Request(
        messages=(Message("user", prompt),),
        temperature=0.0,
        max_tokens=max_tokens or EXTRACTION_MAX_TOKENS.get(kind, 32),
        seed=seed,
    )


def grade_extracted(continuation: str, example: Any, kind: AnswerKind) -> Graded:
    """Grade the scorer's continuation as the stated answer (it followed "... the answer is")."""
    return _grade(f"The answer is {continuation.strip()}", example, kind)


def _grade(response: str, example: Any, kind: AnswerKind) -> Graded:
    return grade(
        response,
        str(getattr(example, "target", "") or ""),
        kind,
        options=tuple(getattr(example, "options", ()) or ()),
        accepted=tuple(getattr(example, "accepted", ()) or ()),
        question=getattr(example, "input", None),
    )


def _kind_of(example: Any, forced: AnswerKind | None, name: str) -> AnswerKind:
    kind = forced or getattr(example, "kind", None)
    if kind is None:
        gold = str(getattr(example, "target", "") or "")
        kind = infer_kind([gold], [str(getattr(example, "input", ""))])
    if kind not in ANSWER_KINDS:
        raise MetricError(
            f"metric {name!r}: example {getattr(example, 'id', '?')!r} has answer kind {kind!r}; "
            f"known kinds: {', '.join(ANSWER_KINDS)}"
        )
    return kind  # type: ignore[return-value]


def _shown(text: str | None, limit: int = 60) -> str:
    flat = " ".join((text or "").split())
    return repr(flat if len(flat) <= limit else flat[: limit - 1] + "…")


@dataclasses.dataclass(frozen=True)
class Extracted:
    """One answer's verdicts: by the rules, and (when the turn was asked) from the continuation."""

    rules: Graded
    turn: Graded | None = None
    continuation: str | None = None
    rejected: str | None = None

    @property
    def final(self) -> Graded:
        """The verdict that counts: the turn's when it was decided, else the rules'."""
        return self.turn if self.turn is not None and not self.turn.undecided else self.rules

    @property
    def changed(self) -> bool:
        """Whether the turn changed the verdict (right ↔ not right)."""
        return self.final.correct != self.rules.correct


class ExtractionMetric:
    """The built-in grader (``kind``, or ``auto``: each example's own) with an extraction turn on
    ``llm`` in ``mode`` (see the module docstring). A :class:`~promptopt.evaluators.metrics.Metric`.

    ``llm`` is the scorer, or a callable that returns it (a task builds its scorer lazily).
    """

    needs_gold = True
    needs_baseline = False

    def __init__(
        self,
        llm: LLM | Callable[[], LLM],
        mode: str = "undecided",
        *,
        kind: AnswerKind | None = None,
        max_tokens: int | None = None,
        seed: int | None = 0,
    ) -> None:
        self.mode = check_extract_mode(mode)
        if kind is not None and kind not in ANSWER_KINDS:
            raise ConfigError(f"unknown answer kind {kind!r}; choose one of: {', '.join(ANSWER_KINDS)}")
        self._llm = llm
        self.kind = kind
        self.max_tokens = max_tokens
        self.seed = seed
        self.name = f"{kind or 'auto'}+extract:{self.mode}"

    @property
    def llm(self) -> LLM:
        """The scorer (built on first use when given as a callable)."""
        return self._llm if isinstance(self._llm, LLM) else self._llm()

    def wants_turn(self, rules: Graded) -> bool:
        """Whether an answer graded ``rules`` gets the extraction turn in this mode."""
        return self.mode == "always" or (self.mode == "undecided" and rules.undecided)

    async def aextract(self, items: Sequence[MetricItem]) -> list[Extracted]:
        """Both verdicts of every item; the turns go out as one batch (none in ``never`` mode)."""
        kinds = [_kind_of(it.example, self.kind, self.name) for it in items]
        out = [Extracted(_grade(it.answer, it.example, k)) for it, k in zip(items, kinds, strict=True)]
        asked = [i for i, e in enumerate(out) if self.wants_turn(e.rules)]
        if not asked:
            return out
        requests = [
            extraction_request(
                items[i].example, items[i].answer, kinds[i], max_tokens=self.max_tokens, seed=self.seed
            )
            for i in asked
        ]
        results = await agenerate_complete(self.llm, requests, what="answer extraction")
        for i, res in zip(asked, results, strict=True):
            if isinstance(res, BudgetExceededError):
                raise res
            if isinstance(res, LLMError):  # rejected as malformed: the rules' reading stands
                out[i] = dataclasses.replace(out[i], rejected=f"{type(res).__name__}: {str(res)[:160]}")
            elif isinstance(res, Completion):
                turn = grade_extracted(res.text, items[i].example, kinds[i])
                out[i] = dataclasses.replace(out[i], turn=turn, continuation=res.text)
            else:  # not a model failure: a bug, never a score
                raise res if isinstance(res, BaseException) else TypeError(f"unexpected result {res!r}")
        return out

    async def ascore(self, items: Sequence[MetricItem]) -> list[Score]:
        return [self._score(it, e) for it, e in zip(items, await self.aextract(items), strict=True)]

    def _score(self, item: MetricItem, e: Extracted) -> Score:
        gold = str(getattr(item.example, "target", "") or "")
        g = e.final
        if g.correct:
            verdict = f"the answer {_shown(g.prediction or gold)} is correct"
        elif g.prediction is None:
            verdict = f"no answer could be read from the response (expected {_shown(gold)})"
        else:
            verdict = f"expected {_shown(gold)}, got {_shown(g.prediction)}"
        if e.rejected is not None:
            verdict += f"; the answer-extraction turn was rejected ({e.rejected}), so the rules decided"
        elif e.turn is not None:
            how = "decided" if not e.turn.undecided else "could not be read either, so the rules decided"
            verdict += (
                f"; answer-extraction turn: the scorer continued 'Therefore, the answer is' with "
                f"{_shown(e.continuation)} ({how})"
            )
        elif e.rules.undecided:
            verdict += "; the rules could not settle on one answer"
        return Score(1.0 if g.correct else 0.0, verdict, g.prediction)
