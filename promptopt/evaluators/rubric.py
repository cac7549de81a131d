"""The rubric LLM judge (Self-Rewarding LMs): one answer at a time, an additive score 0..5.

:class:`RubricJudge` scores each answer alone with the additive five-point rubric, which ends in
``Score: N``; two answers are compared by their (averaged) scores (:func:`compare_scores`). Why a
module apart from the pairwise judge: a different prompt, a different parser and a different
cost (K answers cost K calls, not K(K−1)); :class:`RubricComparison` is shaped like the pairwise
judgement so the evaluation harness records either kind.

Judge output is untrusted text: the score is found by a regular expression, never evaluated.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from promptopt.evaluators.pairwise import JudgeItem
from promptopt.evaluators.verdicts import Outcome
from promptopt.llm.base import (
    LLM,
    BudgetExceededError,
    Constraint,
    Message,
    Request,
    raise_if_unreachable,
    run_sync,
)

# Self-Rewarding Language Models (Yuan et al. 2024), Figure 2, the LLM-as-a-Judge prompt: written
# out from our knowledge of the paper (not copied from a file; no reference code ships it), with
# the paper's placeholders <INSTRUCTION_HERE> and <RESPONSE_HERE> as {question} and {answer}.
# tests/unit/test_rubric_judge.py pins it.
RUBRIC_PROMPT = """Review the user's question and the corresponding response using the additive 5-point scoring system described below. Points are accumulated based on the satisfaction of each criterion:
- Add 1 point if the response is relevant and provides some information related to the user's inquiry, even if it is incomplete or contains some irrelevant content.
- Add another point if the response addresses a substantial portion of the user's question, but does not completely resolve the query or provide a direct answer.
- Award a third point if the response answers the basic elements of the user's question in a useful way, regardless of whether it seems to have been written by an AI Assistant or if it has elements typically found in blogs or search results.
- Grant a fourth point if the response is clearly written from an AI Assistant's perspective, addressing the user's question directly and comprehensively, and is well-organized and helpful, even if there is slight room for improvement in clarity, conciseness or focus.
- Bestow a fifth point for a response that is impeccably tailored to the user's question by an AI Assistant, without extraneous information, reflecting expert knowledge, and demonstrating a high-quality, engaging, and insightful answer.

User: {question}
<response>{answer}</response>

After examining the user's instruction and the response:
- Briefly justify your total score, up to 100 words.
- Conclude with the score using the format: "Score: <total points>"

Remember to assess from the AI Assistant perspective, utilizing web search knowledge as necessary. To evaluate the response in alignment with this additive scoring model, we'll systematically attribute points based on the outlined criteria."""

RUBRIC_MAX = 5
#: "Score: 4", "**Score:** 4", "Total score: 4/5"; the number is validated after matching, so
#: "Score: 7", "Score: 3.5" or "Score: 2+2" is an invalid last score (None), not a reason to look
#: further back. ASCII digits only.
_SCORE_RE = re.compile(
    r"\bscore\s*[*_]*\s*:\s*[*_\s]*(?P<n>[-+]?[0-9]+(?:[.,][0-9]+)?)"
    r"(?P<rest>(?:\s*/\s*5|\s+out\s+of\s+5)?(?=$|[\s*_.,;:!?)\]\"'])|\S*)",
    re.I | re.A,
)
#: Repeated judgements when none is asked for explicitly and the temperature is above 0.
DEFAULT_RUBRIC_SAMPLES = 3

#: The second turn sent when a judgement ends without a valid score (see RubricJudge): the paper's
#: own format sentence, with the range spelled out, decoded under SCORE_CONSTRAINT where the backend
#: can (llama.cpp grammar; the pattern is what the scripted fake honours). Its answer is parsed by
#: the same strict parser, so a backend that ignores the constraint can still fail it.
FOLLOW_UP_PROMPT = (
    'Conclude with the score using the format: "Score: <total points>", where the total is an '
    "integer from 0 to 5."
)
SCORE_CONSTRAINT = Constraint(gbnf='root ::= "Score: " [0-5]', pattern=r"Score: [0-5]")


def parse_rubric_score(text: str) -> int | None:
    """The last ``Score: N`` in a judge's output, N an integer in 0..5; else None.

    Untrusted text: matched by a regular expression, never evaluated. Only the *last* "Score:"
    counts (a judge that restates the format or revises itself ends with its verdict); when that
    one is not an integer within 0..5 the output is unparseable, rather than an earlier one used.
    """
    matches = list(_SCORE_RE.finditer(text))
    if not matches:
        return None
    last = matches[-1]
    raw = last.group("n")
    trailing = last.group("rest")
    if trailing and not re.fullmatch(r"(?:\s*/\s*5|\s+out\s+of\s+5)", trailing, re.I):
        return None  # "Score: 2+2", "Score: 4x": not a plain number
    if not re.fullmatch(r"\+?[0-9]+", raw):
        return None
    n = int(raw)
    return n if 0 <= n <= RUBRIC_MAX else None


@dataclass(frozen=True)
class RubricJudgement:
    """One answer's rubric judgement: the mean of the parsed scores of its repeated judgements.

    ``score`` is None when no judgement could be parsed (or a call failed: ``error`` is set and
    the item should be retried, not counted). ``unparsed`` counts the judgements still without a
    valid ``Score: N`` after the follow-up; ``recovered`` those whose score came from the
    follow-up turn (its answers are in ``follow_up_raw``).
    """

    score: float | None
    scores: tuple[int | None, ...] = ()
    raw: tuple[str, ...] = ()
    unparsed: int = 0
    error: str | None = None
    recovered: int = 0
    follow_up_raw: tuple[str, ...] = ()

    @classmethod
    def of(
        cls,
        scores: Sequence[int | None],
        raw: tuple[str, ...],
        *,
        recovered: int = 0,
        follow_up_raw: tuple[str, ...] = (),
    ) -> RubricJudgement:
        """The judgement of parsed ``scores``: their mean (None when none parsed) and the unparsed count."""
        valid = [x for x in scores if x is not None]
        mean = sum(valid) / len(valid) if valid else None
        return cls(mean, tuple(scores), raw, len(scores) - len(valid), None, recovered, follow_up_raw)

    def to_json(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "scores": list(self.scores),
            "raw": list(self.raw),
            "follow_up_raw": list(self.follow_up_raw),
        }


@dataclass(frozen=True)
class RubricComparison:
    """Two answers scored apart and compared (candidate's perspective), shaped like
    :class:`PairJudgement` (``outcome``, ``unparsed``, ``error``, ``to_json``) so the evaluation
    harness records either kind. An unparseable score makes the item a tie, as an unparseable
    pairwise verdict does."""

    outcome: Outcome | None
    baseline: RubricJudgement
    candidate: RubricJudgement
    unparsed: int = 0
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": "rubric",
            "outcome": self.outcome,
            "baseline": self.baseline.to_json(),
            "candidate": self.candidate.to_json(),
            "unparsed": self.unparsed,
            "error": self.error,
        }


def compare_scores(baseline: float | None, candidate: float | None) -> Outcome:
    """win if the candidate scores higher, loss if lower, tie if equal or either is missing."""
    if baseline is None or candidate is None or baseline == candidate:
        return "tie"
    return "win" if candidate > baseline else "loss"


class RubricJudge:
    """Score single answers 0..5 with the Self-Rewarding LMs additive rubric (:data:`RUBRIC_PROMPT`).

    Why a second judge: a pairwise judge says which of two answers is better, a rubric judge gives
    each answer a score of its own, so K candidates cost K calls instead of K(K−1), and scores of
    different runs can be compared. At temperature 0 each answer is judged once (a repeat would be
    the same text); above 0 it is judged ``samples`` times (default 3) with seeds ``seed``,
    ``seed + 1``, ... and the parsed scores are averaged.

    ``follow_up`` (on by default; beyond the paper, whose judge was a 70B model): a judgement that
    ends without a valid score gets one more turn, its own text as the assistant's message and
    :data:`FOLLOW_UP_PROMPT`, decoded under :data:`SCORE_CONSTRAINT` where the backend can. Why:
    small judges justify at length and then stop, or score out of 100 ("Score: 85"); measured
    with Qwen2.5-Coder-1.5B on 60 BPO answers, 26 judgements had no valid score, so most rubric
    comparisons were ties by default. The follow-up asks the same judge to commit to a score
    after its own reasoning; its answer goes through the same strict parser. A follow-up call
    that fails leaves the judgement unparsed; with ``follow_up_error`` it makes the judgement an
    ``error`` instead (retry it), for callers that would otherwise count "no score" as a 0.
    """

    kind = "rubric"
    rule = (
        "each answer gets an additive 0-5 rubric score (Self-Rewarding LMs); win when the rewritten "
        "prompt's answer scores higher, loss when lower, else tie (an unparseable score is a tie)"
    )

    def __init__(
        self,
        llm: LLM,
        *,
        max_tokens: int = 512,
        temperature: float = 0.0,
        samples: int | None = None,
        seed: int | None = 0,
        template: str = RUBRIC_PROMPT,
        follow_up: bool = True,
        follow_up_error: bool = False,
    ) -> None:
        if samples is not None and samples < 1:
            raise ValueError(f"samples must be >= 1, got {samples}")
        self.llm = llm
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.seed = seed
        self.template = template
        self.follow_up = follow_up
        self.follow_up_error = follow_up_error
        if temperature <= 0.0:
            self.samples = 1
        else:
            self.samples = DEFAULT_RUBRIC_SAMPLES if samples is None else samples

    def render(self, question: str, answer: str) -> str:
        values = {"question": question, "answer": answer}
        # One pass, so an answer containing "{question}" is not expanded.
        return re.sub(r"\{(question|answer)\}", lambda m: values[m.group(1)], self.template)

    def _requests(self, question: str, answer: str) -> list[Request]:
        text = self.render(question, answer)
        return [
            Request.chat(
                text,
                temperature=self.temperature,
                max_tokens=self.max_tokens,
                seed=None if self.seed is None else self.seed + k,
            )
            for k in range(self.samples)
        ]

    async def ajudge(self, prompts: Sequence[str], answers: Sequence[str]) -> list[RubricJudgement]:
        """One judgement per (prompt, answer), all requests in one batched call.

        A failed call makes that answer's judgement an ``error`` (retry it); a budget refusal is
        raised, since every following call would be refused too.
        """
        if len(prompts) != len(answers):
            raise ValueError("prompts and answers must have the same length")
        requests = [r for q, a in zip(prompts, answers, strict=True) for r in self._requests(q, a)]
        results = await self.llm.agenerate(requests, return_exceptions=True) if requests else []
        raise_if_unreachable(results)
        out: list[RubricJudgement] = []
        k = self.samples
        for i in range(len(prompts)):
            chunk = results[i * k : (i + 1) * k]
            for r in chunk:
                if isinstance(r, BudgetExceededError):
                    raise r
            failed = [r for r in chunk if isinstance(r, BaseException)]
            texts = tuple("" if isinstance(r, BaseException) else r.text for r in chunk)
            if failed:
                err = failed[0]
                out.append(RubricJudgement(None, raw=texts, error=f"{err.__class__.__name__}: {err}"[:300]))
                continue
            out.append(RubricJudgement.of([parse_rubric_score(t) for t in texts], texts))
        if self.follow_up:
            out = await self._follow_up(requests, out)
        return out

    async def _follow_up(
        self, requests: list[Request], judged: list[RubricJudgement]
    ) -> list[RubricJudgement]:
        """Ask once more, constrained, for every judgement without a valid score (see the class)."""
        k = self.samples
        todo = [
            (i, j)
            for i, jd in enumerate(judged)
            if jd.error is None
            for j, score in enumerate(jd.scores)
            if score is None
        ]
        if not todo:
            return judged
        asks = [
            requests[i * k + j].with_(
                messages=(
                    *(requests[i * k + j].messages or ()),
                    Message("assistant", judged[i].raw[j]),
                    Message("user", FOLLOW_UP_PROMPT),
                ),
                max_tokens=8,
                constraint=SCORE_CONSTRAINT,
            )
            for i, j in todo
        ]
        results = await self.llm.agenerate(asks, return_exceptions=True)
        for r in results:
            if isinstance(r, BudgetExceededError):
                raise r
        failed = {ij: r for ij, r in zip(todo, results, strict=True) if isinstance(r, BaseException)}
        if self.follow_up_error:
            raise_if_unreachable(results)
        # a failed follow-up leaves the judgement unparsed, as it was: it is not a failed judgement
        texts = {
            ij: "" if isinstance(r, BaseException) else r.text for ij, r in zip(todo, results, strict=True)
        }
        out = list(judged)
        for i in sorted({i for i, _ in todo}):
            asked = sorted(j for i2, j in todo if i2 == i)
            err = next((failed[(i, j)] for j in asked if (i, j) in failed), None)
            if self.follow_up_error and err is not None:
                error = f"{err.__class__.__name__}: {err}"[:300]
                out[i] = RubricJudgement(None, raw=judged[i].raw, error=error)
                continue
            again = {j: parse_rubric_score(texts[(i, j)]) for j in asked}
            out[i] = RubricJudgement.of(
                [again.get(j, s) for j, s in enumerate(judged[i].scores)],
                judged[i].raw,
                recovered=sum(1 for x in again.values() if x is not None),
                follow_up_raw=tuple(texts[(i, j)] for j in asked),
            )
        return out

    def judge(self, prompts: Sequence[str], answers: Sequence[str]) -> list[RubricJudgement]:
        """Sync door to :meth:`ajudge`."""
        return run_sync(self.ajudge(list(prompts), list(answers)))

    async def ascore(self, prompts: Sequence[str], answers: Sequence[str]) -> list[float | None]:
        """The mean rubric score (0..5) of each answer to its prompt; None when unparseable or failed."""
        return [j.score for j in await self.ajudge(prompts, answers)]

    def score(self, prompts: Sequence[str], answers: Sequence[str]) -> list[float | None]:
        """Sync door to :meth:`ascore`."""
        return run_sync(self.ascore(list(prompts), list(answers)))

    async def acompare(self, items: Sequence[JudgeItem]) -> list[RubricComparison]:
        """Score baseline and candidate of every item apart and compare (the eval harness's door,
        the same as :meth:`PairwiseJudge.acompare`)."""
        questions = [it.question for it in items for _ in (0, 1)]
        answers = [a for it in items for a in (it.baseline, it.candidate)]
        judged = await self.ajudge(questions, answers)
        out: list[RubricComparison] = []
        for i in range(len(items)):
            b, c = judged[2 * i], judged[2 * i + 1]
            err = b.error or c.error
            outcome = None if err else compare_scores(b.score, c.score)
            out.append(RubricComparison(outcome, b, c, unparsed=b.unparsed + c.unparsed, error=err))
        return out

    def compare(self, items: Sequence[JudgeItem]) -> list[RubricComparison]:
        """Sync door to :meth:`acompare`."""
        return run_sync(self.acompare(list(items)))
