"""LLM judges: pairwise (MT-bench style, both orders) and rubric (Self-Rewarding LMs, one answer
at a time, 0..5), win/tie/loss and ΔWR with a bootstrap CI.

The rubric judge (:class:`RubricJudge`) scores each answer alone with the additive five-point rubric
and ends in ``Score: N``; two answers are compared by their (averaged) scores. ``JUDGE_KINDS`` names
both for ``bpo eval --judge``. The rest of this docstring is about the pairwise judge.

Protocol. For each item the judge sees the user's question and two answers, once with the
baseline answer as Assistant A and once with the candidate answer as Assistant A, and ends each
judgement with ``[[A]]``, ``[[B]]`` or ``[[C]]`` (tie), as in MT-bench's ``pair-v2`` prompt that
the BPO evaluation uses. Judging both orders cancels the strong position bias of LLM judges.

Aggregation rule (MT-bench's conservative rule): the candidate **wins** only when both orders
prefer it, **loses** only when both orders prefer the baseline, and everything else (one order
each way, a tie in either order, an unparseable verdict) is a **tie**. Unparseable verdicts are
flagged on the item so reports can say how often the judge failed the format.

ΔWR = win% − loss% (the BPO paper's headline number), with a seeded percentile bootstrap 95 %
confidence interval over items.

Judge output is untrusted text: verdicts are found by regular expressions, never evaluated, and
never guessed: a denied token ("not [[A]]"), a restated format ('"[[A]]" if ...'), tokens listed
as alternatives ("[[A]] or [[B]]?"), the article in "is a tie" and "Assistant A's" are no
verdicts. Where several verdict tokens remain the last one counts (FastChat takes [[A]] if it
occurs anywhere, then [[B]], then [[C]]; BPO's script looks only at the last paragraph). The
question and answers are inserted by plain replacement, so braces or fake verdict tokens inside
answers cannot change the template (an answer can still try to talk the judge into a verdict;
that is a property of LLM judges, not of parsing).
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal, Protocol

import numpy as np

from promptopt.errors import ConfigError
from promptopt.llm.base import LLM, BudgetExceededError, LLMError, Request, raise_if_unreachable, run_sync

Verdict = Literal["A", "B", "tie"]
Outcome = Literal["win", "tie", "loss"]

# MT-bench "pair-v2", word for word: FastChat fastchat/llm_judge/data/judge_prompts.jsonl (the
# same text is in BPO's src/evaluation/gpt4_score.py). tests/unit/test_judge.py pins it.
PAIR_SYSTEM = (
    "Please act as an impartial judge and evaluate the quality of the responses provided by two AI "
    "assistants to the user question displayed below. You should choose the assistant that follows the "
    "user's instructions and answers the user's question better. Your evaluation should consider factors "
    "such as the helpfulness, relevance, accuracy, depth, creativity, and level of detail of their "
    "responses. Begin your evaluation by comparing the two responses and provide a short explanation. "
    "Avoid any position biases and ensure that the order in which the responses were presented does not "
    "influence your decision. Do not allow the length of the responses to influence your evaluation. Do "
    "not favor certain names of the assistants. Be as objective as possible. After providing your "
    'explanation, output your final verdict by strictly following this format: "[[A]]" if assistant A '
    'is better, "[[B]]" if assistant B is better, and "[[C]]" for a tie.'
)
PAIR_USER = (
    "[User Question]\n{question}\n\n"
    "[The Start of Assistant A's Answer]\n{answer_a}\n[The End of Assistant A's Answer]\n\n"
    "[The Start of Assistant B's Answer]\n{answer_b}\n[The End of Assistant B's Answer]"
)

#: Used by :func:`ascore_rewrites` when no target model is given: the "answers" are prompts.
PROMPT_SYSTEM = (
    "Please act as an impartial judge of prompt rewrites. Below is a user's original request and two "
    "rewritten versions of it, written to get a better answer from an AI assistant. Choose the rewrite "
    "that keeps all of the user's information and intent, adds no unrequested constraints, does not "
    "answer the request itself, and would lead to a more helpful, accurate and harmless answer. Give a "
    'short explanation, then your final verdict strictly in this format: "[[A]]" if rewrite A is '
    'better, "[[B]]" if rewrite B is better, and "[[C]]" for a tie.'
)
PROMPT_USER = (
    "[Original Request]\n{question}\n\n"
    "[The Start of Rewrite A]\n{answer_a}\n[The End of Rewrite A]\n\n"
    "[The Start of Rewrite B]\n{answer_b}\n[The End of Rewrite B]"
)


@dataclass(frozen=True)
class JudgeTemplate:
    """A system prompt and a user template with ``{question}``, ``{answer_a}``, ``{answer_b}``."""

    system: str = PAIR_SYSTEM
    user: str = PAIR_USER

    def render(self, question: str, answer_a: str, answer_b: str) -> str:
        values = {"question": question, "answer_a": answer_a, "answer_b": answer_b}
        # One pass, so an answer containing "{answer_b}" is not expanded.
        return re.sub(r"\{(question|answer_a|answer_b)\}", lambda m: values[m.group(1)], self.user)


MT_BENCH_PAIR = JudgeTemplate()
PROMPT_PAIR = JudgeTemplate(PROMPT_SYSTEM, PROMPT_USER)

# --------------------------------------------------------------------------- verdict parsing

_STRICT_RE = re.compile(r"\[\[\s*(A|B|C|tie)\s*\]\]", re.I)
_QUOTES = "\"'`\u201c\u201d\u2018\u2019"
#: "not [[A]]", "isn't [[A]]", "would not give [[A]]", "rather than [[A]]": the token is denied.
_DENIED_RE = re.compile(
    r"(?:\bnot|n't|\bnever|\bno|\brather\s+than|\binstead\s+of)\s+"
    rf"(?:(?:give|choose|pick|select|output|say|be|a|an|the|verdict|of)\s+){{0,2}}[{_QUOTES}*_]*$",
    re.I,
)
#: The format being restated ('"[[A]]" if assistant A is better') or a question ("[[A]]?").
_FORMAT_AFTER_RE = re.compile(
    rf"^[{_QUOTES}*_]*\s*(?:\?|(?:if|when|means|meaning|indicates|denotes|stands\s+for|for\s+a)\b)", re.I
)
#: Tokens listed as alternatives: "[[A]] or [[B]]", "[[A]]/[[B]]", "[[A]], [[B]], [[C]]".
_LIST_GAP_RE = re.compile(rf"[{_QUOTES}*_\s]*(?:,|/|\bor\b|\band\b|,\s*or\b|,\s*and\b)[{_QUOTES}*_\s]*", re.I)
_VERDICT_CUE_RE = re.compile(r"verdict\s*(?:is|:|-|=)?\s*(?:that\s+)?[*_\s]*$", re.I)
#: The fallback for judges that ignore the format: "verdict: B", "My final verdict is a tie".
_LOOSE_RE = re.compile(r"\bverdict\b\s*(?:is\b|:|-|=)?\s*(?:that\s+)?", re.I)
_LOOSE_TIE_RE = re.compile(r"(?:it'?s\s+|it\s+is\s+)?(?:an?\s+)?(?:tie|draw)\b", re.I)
_LOOSE_LETTER_RE = re.compile(r"(?:(?i:assistant|response|answer)\s+)?(?P<l>[ABC])(?![\w'\u2019])")


@dataclass(frozen=True)
class ParsedVerdict:
    """``verdict`` in judge-position terms; ``parsed`` False means no verdict was found (tie);
    ``ambiguous`` True means several different verdict tokens appeared (the last one was used)."""

    verdict: Verdict
    parsed: bool
    ambiguous: bool = False


def _norm(token: str) -> Verdict:
    t = token.upper()
    return "A" if t == "A" else "B" if t == "B" else "tie"


def _strict_verdicts(text: str) -> list[Verdict]:
    """The ``[[X]]`` tokens that state a verdict, in order.

    Left out: a denied token ("not [[A]]"), a restated format ('"[[A]]" if A is better'), a
    question ("[[A]]?"), tokens listed as alternatives ("[[A]] or [[B]]"), and a quoted token
    unless it closes the output or follows "verdict" ('Final verdict: "[[B]]"').
    """
    raw = list(_STRICT_RE.finditer(text))
    listed: set[int] = set()
    for i in range(1, len(raw)):
        if _LIST_GAP_RE.fullmatch(text[raw[i - 1].end() : raw[i].start()]):
            listed.update((i - 1, i))
    out: list[Verdict] = []
    for i, m in enumerate(raw):
        before, after = text[max(0, m.start() - 60) : m.start()], text[m.end() :]
        quoted = bool(before) and bool(after) and before[-1] in _QUOTES and after[0] in _QUOTES
        if (
            i in listed
            or _DENIED_RE.search(before)
            or _FORMAT_AFTER_RE.match(after)
            or (
                quoted
                and not _VERDICT_CUE_RE.search(before[:-1])
                and not re.fullmatch(rf"[{_QUOTES}*_.!\s]*", after)
            )
        ):
            continue
        out.append(_norm(m.group(1)))
    return out


def _loose_verdicts(text: str) -> list[Verdict]:
    """Verdicts stated in words after "verdict". The letter must be a capital A/B/C on its own
    (the article in "is a tie" is no verdict, nor is "Assistant A's"); a denied one is skipped."""
    out: list[Verdict] = []
    for m in _LOOSE_RE.finditer(text):
        rest = re.sub(r"^[\s*_\"'`\[\]]+", "", text[m.end() : m.end() + 80])
        rest = re.sub(r"[\[\]*_]", "", rest)
        if _LOOSE_TIE_RE.match(rest):
            out.append("tie")
        elif letter := _LOOSE_LETTER_RE.match(rest):
            out.append(_norm(letter.group("l")))
    return out


def parse_verdict(text: str) -> ParsedVerdict:
    """The verdict in a judge's output: the last ``[[A]]``/``[[B]]``/``[[C]]`` token that states
    a verdict (see :func:`_strict_verdicts`), else the last "verdict: A"-style phrase, else
    unparseable (counted as a tie). Never guesses: an article, a quoted option, a denied or
    listed token and a possessive ("Assistant A's") are not verdicts."""
    tokens = _strict_verdicts(text) or _loose_verdicts(text)
    if not tokens:
        return ParsedVerdict("tie", parsed=False)
    return ParsedVerdict(tokens[-1], parsed=True, ambiguous=len(set(tokens)) > 1)


def combine(first: Verdict, second: Verdict) -> Outcome:
    """Outcome for the candidate from the two orders.

    ``first``: baseline is A, candidate is B. ``second``: candidate is A, baseline is B.
    Win only when both orders prefer the candidate, loss only when both prefer the baseline.
    """
    if first == "B" and second == "A":
        return "win"
    if first == "A" and second == "B":
        return "loss"
    return "tie"


# --------------------------------------------------------------------------- the judge


@dataclass(frozen=True)
class JudgeItem:
    """One comparison: the question shown to the judge, the baseline and the candidate answer."""

    question: str
    baseline: str
    candidate: str


@dataclass(frozen=True)
class PairJudgement:
    """Both orders of one comparison and the combined outcome (candidate's perspective).

    ``error`` is set (and ``outcome`` is None) when a judge call failed; such items should be
    retried, not counted.
    """

    outcome: Outcome | None
    first: str  # raw judge text, baseline shown as A
    second: str  # raw judge text, candidate shown as A
    first_verdict: Verdict = "tie"
    second_verdict: Verdict = "tie"
    unparsed: int = 0  # how many of the two verdicts could not be parsed
    ambiguous: int = 0
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class PairwiseJudge:
    """Compare two answers with an LLM in both orders. See the module docstring for the rule."""

    def __init__(
        self,
        llm: LLM,
        *,
        template: JudgeTemplate = MT_BENCH_PAIR,
        max_tokens: int = 512,
        temperature: float = 0.0,
        seed: int | None = 0,
    ) -> None:
        self.llm = llm
        self.template = template
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.seed = seed

    def _request(self, question: str, a: str, b: str) -> Request:
        return Request.chat(
            self.template.render(question, a, b),
            system=self.template.system,
            temperature=self.temperature,
            max_tokens=self.max_tokens,
            seed=self.seed,
        )

    async def acompare(self, items: Sequence[JudgeItem]) -> list[PairJudgement]:
        """Judge every item in both orders with one batched call (2 × len(items) requests).

        LLM failures become judgements with ``error`` set; a budget refusal is raised, since
        every following call would be refused too.
        """
        requests: list[Request] = []
        for it in items:
            requests.append(self._request(it.question, it.baseline, it.candidate))
            requests.append(self._request(it.question, it.candidate, it.baseline))
        results = await self.llm.agenerate(requests, return_exceptions=True)
        raise_if_unreachable(results)
        out: list[PairJudgement] = []
        for i in range(len(items)):
            r1, r2 = results[2 * i], results[2 * i + 1]
            for r in (r1, r2):
                if isinstance(r, BudgetExceededError):
                    raise r
            if isinstance(r1, LLMError) or isinstance(r2, LLMError):
                err = r1 if isinstance(r1, LLMError) else r2
                out.append(
                    PairJudgement(
                        None,
                        "" if isinstance(r1, LLMError) else r1.text,
                        "" if isinstance(r2, LLMError) else r2.text,
                        error=f"{err.__class__.__name__}: {err}"[:300],
                    )
                )
                continue
            p1, p2 = parse_verdict(r1.text), parse_verdict(r2.text)
            out.append(
                PairJudgement(
                    combine(p1.verdict, p2.verdict),
                    r1.text,
                    r2.text,
                    p1.verdict,
                    p2.verdict,
                    unparsed=int(not p1.parsed) + int(not p2.parsed),
                    ambiguous=int(p1.ambiguous) + int(p2.ambiguous),
                )
            )
        return out

    def compare(self, items: Sequence[JudgeItem]) -> list[PairJudgement]:
        """Sync door to :meth:`acompare`."""
        return run_sync(self.acompare(list(items)))


# --------------------------------------------------------------------------- rubric judge

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
    the item should be retried, not counted). ``unparsed`` counts the judgements without a valid
    ``Score: N``.
    """

    score: float | None
    scores: tuple[int | None, ...] = ()
    raw: tuple[str, ...] = ()
    unparsed: int = 0
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "scores": list(self.scores), "raw": list(self.raw)}


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


class Judge(Protocol):
    """What the evaluation harness needs of a judge: compare a baseline and a candidate answer
    per item (both :class:`PairwiseJudge` and :class:`RubricJudge` do)."""

    llm: LLM

    async def acompare(self, items: Sequence[JudgeItem]) -> Sequence[PairJudgement | RubricComparison]: ...


class RubricJudge:
    """Score single answers 0..5 with the Self-Rewarding LMs additive rubric (:data:`RUBRIC_PROMPT`).

    Why a second judge: a pairwise judge says which of two answers is better, a rubric judge gives
    each answer a score of its own, so K candidates cost K calls instead of K(K−1), and scores of
    different runs can be compared. At temperature 0 each answer is judged once (a repeat would be
    the same text); above 0 it is judged ``samples`` times (default 3) with seeds ``seed``,
    ``seed + 1``, ... and the parsed scores are averaged.
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
    ) -> None:
        if samples is not None and samples < 1:
            raise ValueError(f"samples must be >= 1, got {samples}")
        self.llm = llm
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.seed = seed
        self.template = template
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
            scores = tuple(parse_rubric_score(t) for t in texts)
            valid = [s for s in scores if s is not None]
            mean = sum(valid) / len(valid) if valid else None
            out.append(RubricJudgement(mean, scores, texts, unparsed=len(scores) - len(valid)))
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


def _pairwise(
    llm: LLM, *, max_tokens: int, temperature: float, samples: int | None, seed: int | None
) -> Judge:
    del samples  # each order is judged once; both orders already cancel position bias
    return PairwiseJudge(llm, max_tokens=max_tokens, temperature=temperature, seed=seed)


def _rubric(llm: LLM, *, max_tokens: int, temperature: float, samples: int | None, seed: int | None) -> Judge:
    return RubricJudge(llm, max_tokens=max_tokens, temperature=temperature, samples=samples, seed=seed)


#: Judge kinds by name (``bpo eval --judge``).
JUDGE_KINDS: dict[str, Callable[..., Judge]] = {"pairwise": _pairwise, "rubric": _rubric}


def make_judge(
    kind: str,
    llm: LLM,
    *,
    max_tokens: int = 512,
    temperature: float = 0.0,
    samples: int | None = None,
    seed: int | None = 0,
) -> Judge:
    """A judge of the named kind (:data:`JUDGE_KINDS`). ``samples`` (repeated judgements,
    averaged above temperature 0) applies to the rubric judge."""
    factory = JUDGE_KINDS.get(kind)
    if factory is None:
        raise ConfigError(f"unknown judge {kind!r}; choose one of {', '.join(JUDGE_KINDS)}")
    return factory(llm, max_tokens=max_tokens, temperature=temperature, samples=samples, seed=seed)


# --------------------------------------------------------------------------- best of K


async def around_robin(
    judge: PairwiseJudge, prompts: Sequence[str], answers: Sequence[Sequence[str]]
) -> tuple[list[list[float]], set[int]]:
    """Copeland scores of each prompt's answers: every unordered pair judged in both orders (one
    batched call for all), 1 per win and 0.5 per tie; identical answers tie without a call.

    Returns the scores and the indices of the prompts with a failed comparison (scored there as a
    tie): best-of-K keeps those scores, preference building drops the prompt.
    """
    scores = [[0.0] * len(ans) for ans in answers]
    items: list[JudgeItem] = []
    where: list[tuple[int, int, int]] = []
    for i, ans in enumerate(answers):
        for a, b in itertools.combinations(range(len(ans)), 2):
            if ans[a] == ans[b]:
                scores[i][a] += 0.5
                scores[i][b] += 0.5
                continue
            items.append(JudgeItem(prompts[i], ans[a], ans[b]))
            where.append((i, a, b))
    failed: set[int] = set()
    judgements = await judge.acompare(items) if items else []
    for (i, a, b), jd in zip(where, judgements, strict=True):
        if jd.error is not None or jd.outcome is None:
            failed.add(i)
        if jd.outcome == "win":  # the candidate (b) beat the baseline (a)
            scores[i][b] += 1.0
        elif jd.outcome == "loss":
            scores[i][a] += 1.0
        else:  # tie, or a failed call: split the point
            scores[i][a] += 0.5
            scores[i][b] += 0.5
    return scores, failed


async def ascore_rewrites(
    judge: PairwiseJudge,
    originals: Sequence[str],
    candidates: Sequence[Sequence[str]],
    *,
    target: LLM | None = None,
    max_tokens: int = 512,
    seed: int | None = 0,
) -> list[list[float]]:
    """Round-robin scores of K candidate rewrites per original prompt.

    What it does: every unordered pair of a prompt's candidates is judged in both orders with the
    win/tie/loss rule above; a candidate scores 1 per win and 0.5 per tie (Copeland-style), so the
    scores of one prompt sum to K(K−1)/2. With ``target`` the judge compares the target model's
    *answers* to each rewrite (the BPO goal, costs K answer calls + K(K−1) judge calls per prompt);
    without it the judge compares the rewritten *prompts* directly with :data:`PROMPT_PAIR`
    (cheaper, no target needed), unless the judge was built with another template. Identical
    candidates tie without a call.
    """
    if len(originals) != len(candidates):
        raise ValueError("originals and candidates must have the same length")
    answers: list[list[str]]
    if target is not None:
        flat = [(i, j) for i, cs in enumerate(candidates) for j in range(len(cs))]
        reqs = [
            Request.chat(candidates[i][j], temperature=0.0, max_tokens=max_tokens, seed=seed) for i, j in flat
        ]
        done = await target.agenerate(reqs)
        answers = [[""] * len(cs) for cs in candidates]
        for (i, j), c in zip(flat, done, strict=True):
            answers[i][j] = c.text
        pair_judge = judge
    else:
        answers = [list(cs) for cs in candidates]
        pair_judge = (
            PairwiseJudge(
                judge.llm,
                template=PROMPT_PAIR,
                max_tokens=judge.max_tokens,
                temperature=judge.temperature,
                seed=judge.seed,
            )
            if judge.template == MT_BENCH_PAIR
            else judge
        )
    scores, _failed = await around_robin(pair_judge, originals, answers)  # a failed call: a tie
    return scores


def score_rewrites(
    judge: PairwiseJudge,
    originals: Sequence[str],
    candidates: Sequence[Sequence[str]],
    *,
    target: LLM | None = None,
) -> list[list[float]]:
    """Sync door to :func:`ascore_rewrites`."""
    return run_sync(ascore_rewrites(judge, originals, candidates, target=target))


async def apick_best(
    judge: PairwiseJudge,
    originals: Sequence[str],
    candidates: Sequence[Sequence[str]],
    *,
    target: LLM | None = None,
) -> list[int]:
    """Index of the best candidate per prompt (highest round-robin score; lowest index on ties)."""
    scores = await ascore_rewrites(judge, originals, candidates, target=target)
    return [max(range(len(s)), key=lambda k: (s[k], -k)) if s else -1 for s in scores]


def pick_best(
    judge: PairwiseJudge,
    originals: Sequence[str],
    candidates: Sequence[Sequence[str]],
    *,
    target: LLM | None = None,
) -> list[int]:
    """Sync door to :func:`apick_best`."""
    return run_sync(apick_best(judge, originals, candidates, target=target))


# --------------------------------------------------------------------------- statistics


@dataclass(frozen=True)
class WinRate:
    """Counts, percentages, ΔWR = win% − loss% and its bootstrap CI (percent points)."""

    n: int
    win: int
    tie: int
    loss: int
    win_pct: float
    tie_pct: float
    loss_pct: float
    delta_wr: float
    ci_low: float
    ci_high: float
    confidence: float = 0.95

    def to_json(self) -> dict[str, Any]:
        """As a dict; NaN (no items) becomes None so the file stays strict JSON."""
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in asdict(self).items()}


def win_rate(
    outcomes: Sequence[str],
    *,
    n_boot: int = 10_000,
    seed: int = 0,
    confidence: float = 0.95,
) -> WinRate:
    """Win/tie/loss counts and ΔWR with a percentile bootstrap CI over items (pure function).

    Each bootstrap replicate resamples the n outcomes with replacement (numpy ``default_rng(seed)``)
    and recomputes ΔWR; the CI is the (1−c)/2 and (1+c)/2 quantiles. With no items every number is
    NaN except the counts.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    bad = [o for o in outcomes if o not in ("win", "tie", "loss")]
    if bad:
        raise ValueError(f"outcomes must be win/tie/loss, got {bad[0]!r}")
    n = len(outcomes)
    w, t, lo = (sum(1 for o in outcomes if o == k) for k in ("win", "tie", "loss"))
    if n == 0:
        nan = math.nan
        return WinRate(0, 0, 0, 0, nan, nan, nan, nan, nan, nan, confidence)
    values = np.array([1.0 if o == "win" else -1.0 if o == "loss" else 0.0 for o in outcomes])
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n_boot, n))
    boots = values[idx].mean(axis=1) * 100.0
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(boots, [alpha, 1.0 - alpha])
    return WinRate(
        n,
        w,
        t,
        lo,
        100.0 * w / n,
        100.0 * t / n,
        100.0 * lo / n,
        100.0 * (w - lo) / n,
        float(low),
        float(high),
        confidence,
    )
