"""LLM judges as metrics: score a model's answers to prompts that have no gold answers.

Why: instruction search on a user's own prompts (OPRO) needs a value in [0, 1] for each answer a
candidate instruction makes the target model give, and for open-ended prompts no rule can give
it; a judge model can. Two modes, built on the judges of :mod:`promptopt.evaluators` (a third,
``judge:responsive``, a yes/no content gate, lives in :mod:`.responsive`):

- :class:`RubricMetric` (``judge:rubric``, the default): the Self-Rewarding LMs additive rubric
  (:class:`~promptopt.evaluators.rubric.RubricJudge`, with its constrained follow-up turn when the
  ``Score: N`` line is missing); value = score / 5. Temperature 0, so the request cache makes a
  re-judged answer free.
- :class:`PairwiseMetric` (``judge:pairwise``): the MT-bench pairwise judge
  (:class:`~promptopt.evaluators.pairwise.PairwiseJudge`) compares the answer with the same
  model's answer *without* any instruction (``MetricItem.baseline``), in both orders. Hard rule:
  win 1.0 (both orders prefer the candidate), loss 0.0 (both prefer the baseline), tie 0.5.
  Soft score, when the backend returns log-probabilities for the verdict token: the mean over the
  two orders of p(candidate better) + 0.5 × p(tie), from the probabilities of ``A``/``B``/``C``
  at the verdict token (see :func:`verdict_probs`). Why: the small judges we can run vote by
  position (the same slot in both orders about 85 % of the time), so under the hard rule most
  items tie at 0.5 and the search gets no signal; the probabilities still say how close the call
  was. An answer identical to the baseline (whitespace aside) is 0.5 without a judge call, so
  the "no instruction" candidate costs nothing and scores exactly 0.5.

Choices shared by both modes:

- The judge sees the example's ``input`` (the user's prompt, never the candidate instruction,
  which would bias it) and, when the example has a non-empty ``target``, that as a reference,
  appended to the question after :data:`REFERENCE_NOTE` (:func:`judge_question`); "may be
  imperfect" because prompts-only data sets often carry a past model's answer there.
- A failed judge call is ``Score(0.0, error="judge: <ErrorType>: <msg>")``: the evaluator
  counts the item as failed and retries it, never as a 0. A budget refusal
  (:class:`~promptopt.llm.base.BudgetExceededError`) and a batch in which no request reached the
  server (:func:`~promptopt.llm.base.raise_if_unreachable`) propagate: the optimizer aborts the
  step and redoes it on resume.
- A judgement that was made but cannot be read (no valid rubric score even after the follow-up)
  is a real value: 0 with feedback "judge gave no score" (retrying a temperature-0 judgement
  would read the same text again). An unparseable pairwise verdict is a tie, as in the judge.
- All judge requests of one ``ascore`` call go out as one ``llm.agenerate`` batch (the rubric's
  follow-ups, only for judgements without a score, as one more).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from typing import Any

from promptopt.errors import ConfigError
from promptopt.evaluators.metrics.base import Metric, MetricError, MetricItem, Score
from promptopt.evaluators.pairwise import JudgeItem, PairJudgement, PairwiseJudge
from promptopt.evaluators.rubric import RUBRIC_MAX, RubricJudge, RubricJudgement
from promptopt.evaluators.verdicts import Outcome, Verdict, parse_verdict, verdict_span
from promptopt.llm.base import LLM, Completion, TokenLogprob

#: What precedes the example's reference answer in the question shown to the judge.
REFERENCE_NOTE = "Reference answer (for the judge; may be imperfect): "
#: The judge's token limit when none is given (the judges' own default).
DEFAULT_JUDGE_MAX_TOKENS = 512
#: Alternatives asked for at each token of a pairwise judgement (OpenAI allows up to 20).
DEFAULT_TOP_LOGPROBS = 5
#: The most characters of the judge's justification kept in a Score's feedback.
FEEDBACK_CHARS = 400
#: What a pairwise feedback line starts with.
PAIRWISE_PREFIX = "pairwise vs no instruction"

_OUTCOME_VALUE: dict[Outcome, float] = {"win": 1.0, "tie": 0.5, "loss": 0.0}
#: the last "Score:" of a rubric judgement (where its justification ends)
_SCORE_LINE_RE = re.compile(r"(?:\btotal\s+)?\bscore\s*[*_]*\s*:", re.I)
#: an alternative verdict token, once the text before the letter is removed: A, B, C or tie, not
#: the start of a word ("Assistant")
_ALT_VERDICT_RE = re.compile(r"\s*(a|b|c|tie)(?![a-z0-9])", re.I)


def judge_question(example: Any) -> str:
    """The question the judge is shown: the example's input, plus its reference answer (when
    ``target`` is set and not blank) after :data:`REFERENCE_NOTE`."""
    question = str(example.input)
    target = getattr(example, "target", None)
    if target is None or not str(target).strip():
        return question
    return f"{question}\n\n{REFERENCE_NOTE}{str(target).strip()}"


def _shorten(text: str, limit: int) -> str:
    """``text`` on one line, at most ``limit`` characters (an ellipsis marks a cut)."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def _number(x: float) -> str:
    """4.0 → "4", 3.6667 → "3.67"."""
    return f"{round(x, 2):g}"


def rubric_justification(raw: str) -> str:
    """A rubric judgement without its closing ``Score: N`` (what is left is the reasoning)."""
    matches = list(_SCORE_LINE_RE.finditer(raw))
    text = raw[: matches[-1].start()] if matches else raw
    return text.strip().rstrip("*_#-:").strip()


class RubricMetric:
    """The additive 0..5 rubric judge as a metric: value = score / 5 (see the module docstring).

    ``samples`` and ``temperature`` are passed to :class:`RubricJudge`: at temperature 0 (the
    default) each answer is judged once and ``samples`` is ignored; above 0 the parsed scores of
    ``samples`` judgements (default 3) are averaged. A follow-up call that fails makes the item
    an error (retried), not "no score".
    """

    name = "judge:rubric"
    needs_gold = False
    needs_baseline = False

    def __init__(
        self,
        llm: LLM,
        *,
        max_tokens: int = DEFAULT_JUDGE_MAX_TOKENS,
        samples: int | None = None,
        temperature: float = 0.0,
    ) -> None:
        self.judge = RubricJudge(
            llm,
            max_tokens=max_tokens,
            temperature=temperature,
            samples=samples,
            follow_up=True,
            follow_up_error=True,
        )

    async def ascore(self, items: Sequence[MetricItem]) -> list[Score]:
        if not items:
            return []
        judged = await self.judge.ajudge(
            [judge_question(it.example) for it in items], [it.answer for it in items]
        )
        return [self.to_score(j) for j in judged]

    @staticmethod
    def to_score(judgement: RubricJudgement) -> Score:
        """One judgement as a Score: an error, "no score" (0), or score / 5 with the reasoning."""
        if judgement.error is not None:
            return Score(0.0, error=f"judge: {judgement.error}")
        if judgement.score is None:
            said = _shorten(" ".join(judgement.raw + judgement.follow_up_raw), 200)
            return Score(0.0, feedback=f"rubric: judge gave no score (it said: {said!r})")
        score = judgement.score
        first = next(
            (raw for raw, s in zip(judgement.raw, judgement.scores, strict=False) if s is not None),
            judgement.raw[0] if judgement.raw else "",
        )
        why = _shorten(rubric_justification(first), FEEDBACK_CHARS)
        shown = _number(score)
        return Score(
            min(1.0, max(0.0, score / RUBRIC_MAX)),
            feedback=f"rubric {shown}/{RUBRIC_MAX}: {why}".rstrip(),
            prediction=shown,
        )


def _alternative_verdict(token: str, prefix: str) -> Verdict | None:
    """The verdict an alternative token at the verdict position would state, given the text
    ``prefix`` that the chosen token has before its letter ("" after "[[", "[[" for "[[A"); None
    when it states none."""
    token, prefix = token.lstrip(), prefix.lstrip()
    if not token.startswith(prefix):
        return None
    m = _ALT_VERDICT_RE.match(token[len(prefix) :])
    if m is None:
        return None
    letter = m.group(1).upper()
    return "A" if letter == "A" else "B" if letter == "B" else "tie"


def verdict_probs(text: str, logprobs: Sequence[TokenLogprob] | None) -> dict[Verdict, float] | None:
    """p(A), p(B), p(tie) at the verdict token of a pairwise judgement, or None.

    The verdict is the ``[[X]]`` token :func:`~promptopt.evaluators.verdicts.parse_verdict`
    reads (:func:`~promptopt.evaluators.verdicts.verdict_span`); the generated token holding its
    letter is found by concatenating the tokens, and its listed alternatives (and itself) are
    read as verdicts where they would state one (``A``, ``B``, ``C``/``tie`` after the same
    text). Their probabilities are summed per verdict and normalised over the three. None when
    there are no log-probabilities, the verdict was stated in words, the tokens do not spell the
    text, or the letter straddles two tokens: the caller then uses the hard verdict.
    """
    if not logprobs:
        return None
    span = verdict_span(text)
    if span is None:
        return None
    joined = "".join(t.token for t in logprobs)
    shift = 0 if joined == text else joined.find(text)  # a server may strip leading space
    if shift < 0 or not text:
        return None
    start, end = span[0] + shift, span[1] + shift
    pos = 0
    for tok in logprobs:
        tok_start, pos = pos, pos + len(tok.token)
        if tok_start <= start < pos:
            if end > pos:
                return None
            chosen, prefix = tok, tok.token[: start - tok_start]
            break
    else:
        return None
    alternatives = dict(chosen.top)
    alternatives.setdefault(chosen.token, chosen.logprob)
    if _alternative_verdict(chosen.token, prefix) is None:
        return None
    mass: dict[Verdict, float] = {"A": 0.0, "B": 0.0, "tie": 0.0}
    for token, logprob in alternatives.items():
        verdict = _alternative_verdict(token, prefix)
        if verdict is not None and math.isfinite(logprob):
            mass[verdict] += math.exp(logprob)
    total = sum(mass.values())
    if total <= 0.0:
        return None
    return {v: p / total for v, p in mass.items()}


def _completion_probs(result: Any) -> dict[Verdict, float] | None:
    if not isinstance(result, Completion) or not result.choices:
        return None
    choice = result.choices[0]
    return verdict_probs(choice.text, choice.logprobs)


def _verdict_name(verdict: Verdict, parsed: bool) -> str:
    return "none" if not parsed else "C" if verdict == "tie" else verdict


class PairwiseMetric:
    """The MT-bench pairwise judge against the answer without any instruction, as a metric
    (see the module docstring for the hard rule and the soft score).

    ``top_logprobs``: alternatives asked for at each judgement token (0: never ask, hard rule
    only). Backends that cannot give them ignore the request and the hard rule applies; the
    request cache does not store judgements that came with log-probabilities (it keeps text
    only), so with a backend that gives them, judging the same pair again is a new call.
    """

    name = "judge:pairwise"
    needs_gold = False
    needs_baseline = True

    def __init__(
        self,
        llm: LLM,
        *,
        max_tokens: int = DEFAULT_JUDGE_MAX_TOKENS,
        top_logprobs: int = DEFAULT_TOP_LOGPROBS,
    ) -> None:
        if top_logprobs < 0:
            raise ValueError(f"top_logprobs must be >= 0, got {top_logprobs}")
        self.judge = PairwiseJudge(llm, max_tokens=max_tokens)
        self.top_logprobs = top_logprobs

    async def ascore(self, items: Sequence[MetricItem]) -> list[Score]:
        out: list[Score | None] = [None] * len(items)
        todo: list[int] = []
        for i, it in enumerate(items):
            if it.baseline is None:
                raise MetricError(
                    f"metric {self.name!r} needs the answer without the instruction (baseline) for "
                    f"example {getattr(it.example, 'id', '?')!r}"
                )
            if it.answer.strip() == it.baseline.strip():
                out[i] = Score(
                    0.5, feedback=f"{PAIRWISE_PREFIX}: tie (the same answer; not judged)", prediction="tie"
                )
            else:
                todo.append(i)
        if todo:
            judge_items = [
                JudgeItem(judge_question(items[i].example), str(items[i].baseline), items[i].answer)
                for i in todo
            ]
            requests = self.judge.requests(judge_items)
            if self.top_logprobs:
                requests = [r.with_(top_logprobs=self.top_logprobs) for r in requests]
            results = await self.judge.llm.agenerate(requests, return_exceptions=True)
            judged = self.judge.judgements(judge_items, results)
            for k, i in enumerate(todo):
                out[i] = self.to_score(judged[k], results[2 * k], results[2 * k + 1])
        return [s for s in out if s is not None]

    @staticmethod
    def to_score(judgement: PairJudgement, first: Any = None, second: Any = None) -> Score:
        """One comparison as a Score; ``first``/``second`` are the two orders' results (baseline
        shown as A, then the candidate as A), read for log-probabilities."""
        if judgement.error is not None or judgement.outcome is None:
            return Score(0.0, error=f"judge: {judgement.error or 'no outcome'}")
        outcome = judgement.outcome
        v1 = _verdict_name(judgement.first_verdict, _parsed(first))
        v2 = _verdict_name(judgement.second_verdict, _parsed(second))
        if outcome == "win":
            detail = "candidate preferred in both orders"
        elif outcome == "loss":
            detail = "answer without instruction preferred in both orders"
        elif {v1, v2} <= {"A", "B"}:
            detail = f"orders disagree: {v1} then {v2}"
        else:
            detail = f"verdicts {v1} then {v2}"
        feedback = f"{PAIRWISE_PREFIX}: {outcome} ({detail})"
        value = _OUTCOME_VALUE[outcome]
        p1, p2 = _completion_probs(first), _completion_probs(second)
        if p1 is not None and p2 is not None:
            # first order: the candidate is B; second order: the candidate is A
            value = ((p1["B"] + 0.5 * p1["tie"]) + (p2["A"] + 0.5 * p2["tie"])) / 2
            value = min(1.0, max(0.0, value))
            feedback += f", p(better)={value:.2f}"
        return Score(value, feedback=feedback, prediction=outcome)


def _parsed(result: Any) -> bool:
    """Whether a judgement result holds a verdict (for the feedback's "none"); True when unknown."""
    return not isinstance(result, Completion) or parse_verdict(result.text).parsed


def _responsive_metric(llm: LLM, **options: Any) -> Metric:
    """``judge:responsive`` (:mod:`.responsive`, which reads this module's :func:`judge_question`,
    so it is imported when chosen rather than at the top)."""
    from promptopt.evaluators.metrics.responsive import ResponsiveMetric

    return ResponsiveMetric(llm, **options)


#: Judge metric modes → their class (called with ``llm`` and, when given, ``max_tokens``; each
#: keeps its own default token limit otherwise).
JUDGE_METRICS: dict[str, Callable[..., Metric]] = {
    "rubric": RubricMetric,
    "pairwise": PairwiseMetric,
    "responsive": _responsive_metric,
}
DEFAULT_JUDGE_MODE = "rubric"


def make_judge_metric(mode: str | None, *, llm: LLM, max_tokens: int | None = None) -> Metric:
    """The judge metric of ``mode`` (None: :data:`DEFAULT_JUDGE_MODE`) judging with ``llm``;
    an unknown mode or a token limit below 1 is a ConfigError."""
    key = DEFAULT_JUDGE_MODE if mode is None else mode.strip().lower()
    factory = JUDGE_METRICS.get(key)
    if factory is None:
        raise ConfigError(
            f"unknown judge metric mode {mode!r}; choose one of: {', '.join(sorted(JUDGE_METRICS))}"
        )
    if llm is None:
        raise ConfigError(f"the judge:{key} metric needs a judge model")
    if max_tokens is not None and (
        not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1
    ):
        raise ConfigError(f"the judge's max_tokens must be a positive integer, got {max_tokens!r}")
    return factory(llm) if max_tokens is None else factory(llm, max_tokens=max_tokens)
