"""Preference data for a rewriter, built by the system itself: (prompt, chosen, rejected) rows.

Why: SFT teaches a rewriter to imitate one rewrite; preference training (``bpo train --method
dpo|orpo``) teaches it which rewrites help. The signal comes from the pipeline the rewriter serves:
for each training prompt the rewriter samples ``n`` rewrites (its own sampling, temperature > 0),
the target model answers each rewrite, a judge ranks the answers against the user's original
prompt, and the rewrites behind the best and the worst answer become ``chosen`` and ``rejected``.

Rules:
- Candidates are the rewriter's cleaned, de-duplicated samples (``select_candidates``, as
  ``bpo rewrite`` sees them). Fewer than 2 distinct candidates: dropped, ``too_few_candidates``.
- The judge is pluggable (:func:`as_ranker`): a pairwise judge (an LLM or a
  :class:`~promptopt.evaluators.pairwise.PairwiseJudge`) plays every pair of answers in both orders,
  1 point per win and 0.5 per tie or split verdict; a rubric judge (anything with
  ``ascore(prompts, answers) -> list[float | None]``) scores each answer on its own; or any
  :class:`Ranker`. Answers a rubric judge could not score are left out of the ranking.
- Best and worst tied (every candidate scored the same): dropped, ``tie`` — no preference to learn.
- A failed target or judge call drops the prompt as ``llm_error`` / ``judge_error``; those are
  retried on a rerun, every other decision is final.

Durability is :mod:`promptopt.optimizers.bpo.build`'s: items go through
:func:`promptopt.parallel.resumable_map`, kept rows are appended (fsync'd) to ``out`` and dropped
ones, with their candidates, answers and scores, to the ``.dropped.jsonl`` sibling; the settings
(rewriter, target, judge, sampling) go to ``.config.json`` and must match on a rerun, which
continues where the last run stopped. Each row keeps every candidate with its answer and score, so
the ranking can be audited.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from promptopt.errors import ConfigError
from promptopt.llm.base import LLM, BudgetExceededError, Request, run_sync
from promptopt.optimizers.bpo.build import BuildReport
from promptopt.optimizers.bpo.jobs import run_kept_dropped
from promptopt.optimizers.bpo.rewriter import RewriteSettings, select_candidates
from promptopt.parallel import Outcome

__all__ = [
    "PairwiseRanker",
    "PrefConfig",
    "Ranker",
    "RubricRanker",
    "as_ranker",
    "build_preferences",
    "abuild_preferences",
    "prompt_id",
]

Scores = list[float | None]


# --------------------------------------------------------------------------- rankers


@runtime_checkable
class Ranker(Protocol):
    """Scores each prompt's answers (higher is better; None: could not be scored).

    ``prompts[i]`` is the user's original prompt, ``answers[i]`` the target's answers to its
    candidate rewrites. Raise nothing for a failed judge call: return None scores for that prompt
    (all of them, when the comparison as a whole failed), or raise to stop the build."""

    name: str

    async def arank(self, prompts: Sequence[str], answers: Sequence[Sequence[str]]) -> list[Scores]: ...


class PairwiseRanker:
    """Round robin over a prompt's answers with a pairwise judge, both orders per pair.

    A candidate gets 1 per win and 0.5 per tie or split verdict; identical answers tie without a
    call. One batched judge call covers every pair of the batch. Any failed comparison of a prompt
    makes all its scores None (a partial round robin would favour the answers that were judged)."""

    def __init__(self, judge: Any) -> None:
        from promptopt.evaluators.pairwise import PairwiseJudge

        self.judge = judge if isinstance(judge, PairwiseJudge) else PairwiseJudge(judge)
        self.name = f"pairwise:{getattr(self.judge.llm, 'name', 'judge')}"

    async def arank(self, prompts: Sequence[str], answers: Sequence[Sequence[str]]) -> list[Scores]:
        from promptopt.evaluators.ranking import around_robin

        scores, failed = await around_robin(self.judge, prompts, answers)
        return [[None] * len(s) if i in failed else list(s) for i, s in enumerate(scores)]


class RubricRanker:
    """Scores each answer on its own with a rubric judge's ``ascore(prompts, answers)``
    (one flat batched call; a None score leaves that answer out of the ranking)."""

    def __init__(self, judge: Any) -> None:
        if not callable(getattr(judge, "ascore", None)):
            raise ConfigError("a rubric judge needs an ascore(prompts, answers) method")
        self.judge = judge
        inner = getattr(judge, "llm", judge)
        self.name = f"rubric:{getattr(inner, 'name', type(judge).__name__)}"

    async def arank(self, prompts: Sequence[str], answers: Sequence[Sequence[str]]) -> list[Scores]:
        flat_p = [p for p, ans in zip(prompts, answers, strict=True) for _ in ans]
        flat_a = [a for ans in answers for a in ans]
        failed: list[bool] = [False] * len(flat_a)
        if not flat_a:
            got: list[Any] = []
        elif callable(getattr(self.judge, "ajudge", None)):  # RubricJudge: tells failures apart
            judged = list(await self.judge.ajudge(flat_p, flat_a))
            got = [j.score for j in judged]
            failed = [getattr(j, "error", None) is not None for j in judged]
        else:
            got = list(await self.judge.ascore(flat_p, flat_a))
        if len(got) != len(flat_a):
            raise ValueError(f"rubric judge returned {len(got)} scores for {len(flat_a)} answers")
        out: list[Scores] = []
        pos = 0
        for ans in answers:
            end = pos + len(ans)
            if any(failed[pos:end]):  # a failed call: judge_error, retried on a rerun
                out.append([None] * len(ans))
            else:
                out.append([None if s is None else float(s) for s in got[pos:end]])
            pos = end
        return out


def as_ranker(judge: Any) -> Ranker:
    """A :class:`Ranker` as it is; a rubric judge (``ascore``) wrapped in :class:`RubricRanker`;
    a ``PairwiseJudge`` or a plain LLM wrapped in :class:`PairwiseRanker`."""
    if callable(getattr(judge, "arank", None)):
        return judge  # type: ignore[no-any-return]
    if callable(getattr(judge, "ascore", None)):
        return RubricRanker(judge)
    if callable(getattr(judge, "acompare", None)) or callable(getattr(judge, "agenerate", None)):
        return PairwiseRanker(judge)
    raise ConfigError(
        f"cannot rank with {type(judge).__name__}: give an LLM, a PairwiseJudge or a rubric judge"
    )


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class PrefConfig:
    """How preference rows are built. ``rewrite``: the rewriter's mode, samples per prompt
    (``n`` >= 2), seed and token limit; the mode's temperature must be > 0 (distinct samples).
    ``answer_max_tokens``: the target's answer limit (answers at temperature 0)."""

    rewrite: RewriteSettings = field(default_factory=lambda: RewriteSettings(n=4))
    concurrency: int = 8
    answer_max_tokens: int = 512

    def __post_init__(self) -> None:
        if self.rewrite.n < 2:
            raise ConfigError(f"--n must be >= 2 to compare rewrites, got {self.rewrite.n}")
        if self.concurrency < 1:
            raise ConfigError(f"--concurrency must be >= 1, got {self.concurrency}")
        if self.answer_max_tokens < 1:
            raise ConfigError(f"--answer-max-tokens must be >= 1, got {self.answer_max_tokens}")

    def settings(self) -> dict[str, Any]:
        """What must not change between runs into one output (concurrency may)."""
        r = self.rewrite
        return {
            "mode": r.mode,
            "n": r.n,
            "seed": r.seed,
            "max_new_tokens": r.max_new_tokens,
            "answer_max_tokens": self.answer_max_tokens,
        }


def prompt_id(prompt: str) -> str:
    """Stable id of a training prompt (sha256 of its text; same across runs and machines)."""
    return hashlib.sha256(prompt.encode("utf-8")).hexdigest()[:24]


RETRYABLE = frozenset({"llm_error", "judge_error"})  # drops a rerun asks again


def pick_pair(scores: Scores) -> tuple[int, int] | None:
    """(best, worst) candidate indices among the scored ones (earliest on equal scores), or None
    when fewer than two are scored or best and worst tie."""
    scored = [(s, k) for k, s in enumerate(scores) if s is not None]
    if len(scored) < 2:
        return None
    best = max(scored, key=lambda x: (x[0], -x[1]))
    worst = min(scored, key=lambda x: (x[0], x[1]))
    if best[0] == worst[0]:
        return None
    return best[1], worst[1]


# --------------------------------------------------------------------------- builder


class _Step:
    """One batch: sample rewrites, answer them, rank the answers, decide each prompt."""

    def __init__(self, rewriter: Any, target: LLM, ranker: Ranker, cfg: PrefConfig) -> None:
        self.rewriter, self.target, self.ranker, self.cfg = rewriter, target, ranker, cfg
        self.sampling = rewriter.config.sampling(cfg.rewrite.mode)
        if self.sampling.temperature <= 0:
            raise ConfigError(
                f"the rewriter's {cfg.rewrite.mode} mode samples at temperature {self.sampling.temperature}; "
                "preference data needs distinct samples (temperature > 0)"
            )

    async def __call__(self, prompts: list[str]) -> list[Outcome]:
        s = self.cfg.rewrite
        raw = await self.rewriter.asample(
            prompts, mode=s.mode, samples=s.n, seed=s.seed, max_new_tokens=s.max_new_tokens
        )
        cands = [select_candidates(p, texts, self.sampling) for p, texts in zip(prompts, raw, strict=True)]
        flat = [(i, j) for i, cs in enumerate(cands) if len(cs) >= 2 for j in range(len(cs))]
        requests = [
            Request.chat(cands[i][j], temperature=0.0, max_tokens=self.cfg.answer_max_tokens, seed=s.seed)
            for i, j in flat
        ]
        results = await self.target.agenerate(requests, return_exceptions=True) if requests else []
        answers: list[list[str]] = [[""] * len(cs) for cs in cands]
        errors: dict[int, BaseException] = {}
        for (i, j), res in zip(flat, results, strict=True):
            if isinstance(res, BudgetExceededError):
                raise res
            if isinstance(res, BaseException):
                errors.setdefault(i, res)
            else:
                answers[i][j] = res.text
        rank_idx = [i for i, cs in enumerate(cands) if len(cs) >= 2 and i not in errors]
        ranked = await self.ranker.arank([prompts[i] for i in rank_idx], [answers[i] for i in rank_idx])
        scores: dict[int, Scores] = dict(zip(rank_idx, ranked, strict=True))
        return [
            self._decide(i, p, cands[i], answers[i], scores.get(i), errors.get(i))
            for i, p in enumerate(prompts)
        ]

    def _decide(
        self, i: int, prompt: str, cands: list[str], answers: list[str], scores: Scores | None, error: Any
    ) -> Outcome:
        base: dict[str, Any] = {"prompt": prompt, "judge": self.ranker.name}
        table = [
            {"rewrite": c, "answer": a, "score": None if scores is None else scores[k]}
            for k, (c, a) in enumerate(zip(cands, answers, strict=True))
        ]
        if len(cands) < 2:
            rec = {**base, "status": "dropped", "reason": "too_few_candidates", "candidates": table}
            return Outcome(rec)
        if error is not None:
            rec = {**base, "status": "dropped", "reason": "llm_error", "error": str(error)[:300]}
            return Outcome({**rec, "candidates": table}, error=error)
        assert scores is not None
        if all(s is None for s in scores):
            return Outcome({**base, "status": "dropped", "reason": "judge_error", "candidates": table})
        pair = pick_pair(scores)
        if pair is None:
            scored = sum(s is not None for s in scores)
            reason = "tie" if scored >= 2 else "unscored"
            return Outcome({**base, "status": "dropped", "reason": reason, "candidates": table})
        best, worst = pair
        rec = {
            **base,
            "status": "kept",
            "chosen": cands[best],
            "rejected": cands[worst],
            "chosen_score": scores[best],
            "rejected_score": scores[worst],
            "candidates": table,
        }
        return Outcome(rec)


def _name(obj: Any) -> str:
    return str(getattr(obj, "name", type(obj).__name__))


async def abuild_preferences(
    prompts: Iterable[str],
    rewriter: Any,
    target: LLM,
    judge: Any,
    out: str | Path,
    *,
    config: PrefConfig | None = None,
    progress: Callable[[int, int, BuildReport], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> BuildReport:
    """Build (prompt, chosen, rejected) rows from ``prompts`` into ``out`` (resumable).

    ``rewriter``: a :class:`~promptopt.optimizers.bpo.rewriter.Rewriter` (or anything with its
    ``config`` and ``asample``); ``target``: the LLM that answers the rewrites; ``judge``: see
    :func:`as_ranker`. Returns the counts of kept rows and dropped prompts per reason.
    """
    cfg = config or PrefConfig()
    ranker = as_ranker(judge)
    settings = {"rewriter": _name(rewriter), "target": _name(target), "judge": ranker.name, **cfg.settings()}
    return await run_kept_dropped(
        [p for p in prompts if p.strip()],
        _Step(rewriter, target, ranker, cfg),
        out,
        settings,
        BuildReport,
        key=prompt_id,
        concurrency=cfg.concurrency,
        retryable=RETRYABLE,
        progress=progress,
        should_stop=should_stop,
    )


def build_preferences(
    prompts: Iterable[str],
    rewriter: Any,
    target: LLM,
    judge: Any,
    out: str | Path,
    *,
    config: PrefConfig | None = None,
    progress: Callable[[int, int, BuildReport], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> BuildReport:
    """Sync door to :func:`abuild_preferences`."""
    return run_sync(
        abuild_preferences(
            prompts, rewriter, target, judge, out, config=config, progress=progress, should_stop=should_stop
        )
    )
