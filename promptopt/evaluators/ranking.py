"""Best of K: rank a prompt's candidate rewrites (or answers) with the pairwise judge.

Why: BPO samples several rewrites per prompt and keeps the best (``bpo rewrite --n``), and
preference building needs the best and the worst; both come from one round robin in which every
pair is judged in both orders (:func:`around_robin`). :func:`ascore_rewrites` judges either the
target model's answers to the rewrites or, without a target, the rewritten prompts themselves.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from promptopt.evaluators.pairwise import JudgeItem, PairwiseJudge
from promptopt.evaluators.verdicts import MT_BENCH_PAIR, PROMPT_PAIR
from promptopt.llm.base import LLM, Request, run_sync


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
    win/tie/loss rule (:func:`~promptopt.evaluators.verdicts.combine`); a candidate scores 1 per
    win and 0.5 per tie (Copeland-style), so the scores of one prompt sum to K(K−1)/2. With ``target`` the judge compares the target model's
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
