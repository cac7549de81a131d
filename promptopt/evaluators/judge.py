"""LLM judges: pairwise (MT-bench style, both orders) and rubric (Self-Rewarding LMs, one answer
at a time, 0..5), and the registry that names them for ``bpo eval --judge``.

Why this module: callers that just need "a judge" ask :func:`make_judge` for one by name
(:data:`JUDGE_KINDS`) and hold it as a :class:`Judge`. It also re-exports the judges' public names
from where they live, so ``from promptopt.evaluators.judge import ...`` keeps working:

- :mod:`promptopt.evaluators.verdicts`: templates, verdict parsing, the two-order rule (pure);
- :mod:`promptopt.evaluators.pairwise`: :class:`PairwiseJudge` and its judgements;
- :mod:`promptopt.evaluators.rubric`: :class:`RubricJudge`, rubric score parsing;
- :mod:`promptopt.evaluators.ranking`: round robin and best-of-K over candidate rewrites;
- :mod:`promptopt.evaluators.stats`: win/tie/loss and ΔWR with a bootstrap CI (:func:`win_rate`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from promptopt.errors import ConfigError
from promptopt.evaluators.pairwise import JudgeItem, PairJudgement, PairwiseJudge
from promptopt.evaluators.ranking import apick_best, around_robin, ascore_rewrites, pick_best, score_rewrites
from promptopt.evaluators.rubric import (
    DEFAULT_RUBRIC_SAMPLES,
    RUBRIC_MAX,
    RUBRIC_PROMPT,
    RubricComparison,
    RubricJudge,
    RubricJudgement,
    compare_scores,
    parse_rubric_score,
)
from promptopt.evaluators.stats import WinRate, win_rate
from promptopt.evaluators.verdicts import (
    MT_BENCH_PAIR,
    PAIR_SYSTEM,
    PAIR_USER,
    PROMPT_PAIR,
    PROMPT_SYSTEM,
    PROMPT_USER,
    JudgeTemplate,
    Outcome,
    ParsedVerdict,
    Verdict,
    combine,
    parse_verdict,
)
from promptopt.llm.base import LLM

__all__ = [
    "DEFAULT_RUBRIC_SAMPLES",
    "JUDGE_KINDS",
    "MT_BENCH_PAIR",
    "PAIR_SYSTEM",
    "PAIR_USER",
    "PROMPT_PAIR",
    "PROMPT_SYSTEM",
    "PROMPT_USER",
    "RUBRIC_MAX",
    "RUBRIC_PROMPT",
    "Judge",
    "JudgeItem",
    "JudgeTemplate",
    "Outcome",
    "PairJudgement",
    "PairwiseJudge",
    "ParsedVerdict",
    "RubricComparison",
    "RubricJudge",
    "RubricJudgement",
    "Verdict",
    "WinRate",
    "apick_best",
    "around_robin",
    "ascore_rewrites",
    "combine",
    "compare_scores",
    "make_judge",
    "parse_rubric_score",
    "parse_verdict",
    "pick_best",
    "score_rewrites",
    "win_rate",
]


class Judge(Protocol):
    """What the evaluation harness needs of a judge: compare a baseline and a candidate answer
    per item (both :class:`PairwiseJudge` and :class:`RubricJudge` do)."""

    llm: LLM

    async def acompare(self, items: Sequence[JudgeItem]) -> Sequence[PairJudgement | RubricComparison]: ...


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
