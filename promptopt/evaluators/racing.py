"""Racing: score instruction candidates on growing subsets of the training examples and stop
those that cannot beat the incumbent.

Why: OPRO scores every proposal on the whole training split, yet most proposals are clearly worse
than the best instruction so far after a few examples. What we took from others:

- DSPy MIPROv2 scores on minibatches with periodic full evaluations: the full score is what counts;
- ProTeGi treats selection as best-arm identification (successive rejects / UCB);
- GEPA accepts a child only if it wins on a minibatch first.

The rule here (a racing test with an exact confidence bound, on a successive-halving-like schedule):

1. The training examples are put in one order, shuffled with the run seed (:func:`example_order`),
   the same for every candidate of the run, so partial scores are comparable and a resumed run
   draws exactly what an uninterrupted one did.
2. Each candidate is scored on the first ``n`` examples of that order, ``n`` growing over the
   rungs of :meth:`RacingConfig.rungs` (``first``, then ×``growth``, then all). Every rung sends
   the survivors' requests in one concurrent batch; every request goes through the scorer's
   request cache, keyed per (instruction, example), so nothing is ever asked twice.
3. After each rung, a candidate's full-split accuracy is bounded from above: the first ``n``
   examples of a random order are a sample without replacement, so the number right is
   hypergeometric, and :func:`upper_bound` is the exact one-sided bound at level ``delta / rungs``
   (a union bound over the rungs). A candidate stops when ``max(bound, partial mean)`` is below the
   bar (before this batch): with probability at least ``1 - delta`` it could not have reached it.
   The bar (``target``) is by default the k-th best *full* training accuracy so far, k being the
   size of the validation shortlist the final choice is made from: the full-scoring run's k-th best
   can only be higher, so a stopped candidate would not have been shortlisted there either, and the
   validation pick is the one full scoring makes. ``target="best"`` races against the incumbent
   (the best full accuracy): more stops, but a candidate below the best on training that would have
   won on validation can be dropped (measured in ``bench/racing_p3.py``).
4. Candidates that reach the last rung have their full training accuracy, as with full scoring.

So a stopped candidate's score (its partial mean, on the ``n`` examples it saw) is always below
the bar, hence below the incumbent: it can never become OPRO's best, and the meta-prompt shows it
as what it is, a low score. Each candidate races only against the bar set before its batch, never
against the rest of its batch, so
its outcome does not depend on which other candidates were scored with it (a step completed after
a resume scores only the missing ones and gets the same result). Without a bar (OPRO's first step;
fewer full scores than the shortlist holds) nothing is stopped.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from promptopt.errors import ConfigError
from promptopt.evaluators.accuracy import Evaluation, ExampleLike, combine

#: ``shortlist``: stop a candidate only when it cannot reach the validation shortlist (so the final,
#: validation-made choice is the one full scoring would make); ``best``: when it cannot beat the
#: incumbent (stops more, but can drop a candidate that validation would have picked)
RACE_TARGETS = ("shortlist", "best")

#: scores a batch of instructions on the same examples (``aevaluate_many`` with the task's options)
EvaluateFn = Callable[[list[str], Sequence[ExampleLike]], Awaitable[list[Evaluation]]]


@dataclass(frozen=True)
class RacingConfig:
    """How a race is run: ``delta`` is the chance, per candidate, of stopping one that would have
    beaten the incumbent; ``first`` examples in the first rung, each next rung ``growth`` times
    larger, the last one the whole split."""

    delta: float = 0.1
    first: int = 10
    growth: float = 1.5
    #: what a candidate must be able to beat to go on: ``shortlist`` (the k-th best full training
    #: score, k = the validation shortlist's size) or ``best`` (the incumbent)
    target: str = "shortlist"

    def __post_init__(self) -> None:
        if self.target not in RACE_TARGETS:
            raise ConfigError(f"race_target must be one of {', '.join(RACE_TARGETS)}, got {self.target!r}")
        if not (isinstance(self.delta, int | float) and 0.0 < float(self.delta) < 1.0):
            raise ConfigError(f"race_delta must be in (0, 1), got {self.delta!r}")
        if isinstance(self.first, bool) or not isinstance(self.first, int) or self.first < 1:
            raise ConfigError(f"race_first must be a positive integer, got {self.first!r}")
        if not (isinstance(self.growth, int | float) and 1.0 < float(self.growth) <= 1000.0):
            raise ConfigError(f"race_growth must be > 1 and at most 1000, got {self.growth!r}")

    def rungs(self, total: int) -> list[int]:
        """Cumulative example counts after each rung, ending with ``total``."""
        out: list[int] = []
        n = min(self.first, total)
        while n < total:
            out.append(n)
            n = max(n + 1, math.ceil(n * self.growth))
        out.append(total)
        return out


def example_order(total: int, seed: int) -> list[int]:
    """The race order of ``total`` training examples: a permutation drawn from the run seed only
    (a sha256-derived seed, not ``hash()``: the same in every process)."""
    digest = hashlib.sha256(f"racing-order:{seed}".encode()).digest()
    order = list(range(total))
    random.Random(int.from_bytes(digest[:8], "big")).shuffle(order)
    return order


def _log_comb(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def _cdf(k: int, total: int, successes: int, n: int) -> float:
    """P(X <= k) for X ~ Hypergeometric(population ``total``, ``successes`` in it, ``n`` drawn)."""
    lo = max(0, n - (total - successes))
    if k < lo:
        return 0.0
    hi = min(k, n, successes)
    denom = _log_comb(total, n)
    return min(
        1.0,
        sum(
            math.exp(_log_comb(successes, x) + _log_comb(total - successes, n - x) - denom)
            for x in range(lo, hi + 1)
        ),
    )


def upper_bound(correct: int, n: int, total: int, alpha: float) -> float:
    """The largest full-split accuracy (a fraction) that is still plausible at level ``alpha``
    after ``correct`` right out of the first ``n`` of ``total`` examples in a random order: the
    largest K with P(X <= correct | K right in all) > alpha. Exact at ``n == total``."""
    if not 0 <= correct <= n <= total:
        raise ValueError(f"bad counts: {correct} right of {n} of {total}")
    lo, hi = correct, correct + (total - n)  # K is at least what was seen, at most all the rest right
    while lo < hi:  # P(X <= correct | K) falls as K grows: find the last K above alpha
        mid = (lo + hi + 1) // 2
        if _cdf(correct, total, mid, n) > alpha:
            lo = mid
        else:
            hi = mid - 1
    return lo / total if total else 0.0


def _successes(parts: Sequence[Evaluation]) -> int:
    """The count the hypergeometric bound is computed on: the number right for a 0/1 metric; for
    a graded one (a judge's 0.8) the sum of values rounded up. The exact bound is for 0/1 values;
    for graded ones this is an approximation that leans towards keeping a candidate (rounding up
    only raises its bound)."""
    return math.ceil(sum(p.value_sum for p in parts) - 1e-9)


@dataclass(frozen=True)
class RaceOutcome:
    """One candidate's race. ``evaluation`` covers the examples it was scored on (in race order);
    ``stopped`` says it ended before the last rung; ``bound`` is the upper bound (0–100) on its
    full accuracy at the last check; ``rungs`` is ``(examples, correct)`` after each rung run."""

    evaluation: Evaluation
    total: int
    stopped: bool
    bound: float
    rungs: list[tuple[int, int]] = field(default_factory=list)

    @property
    def examples(self) -> int:
        return self.evaluation.total

    def info(self) -> dict[str, Any]:
        """JSON-able facts for the journal (a trial's ``info``)."""
        return {
            "partial": self.stopped,
            "examples": self.examples,
            "of": self.total,
            "bound": round(self.bound, 4),
            "rungs": [list(r) for r in self.rungs],
        }


async def arace(
    instructions: Sequence[str],
    examples: Sequence[ExampleLike],
    incumbent: float | None,
    evaluate: EvaluateFn,
    config: RacingConfig | None = None,
) -> list[RaceOutcome]:
    """Race ``instructions`` (distinct) on ``examples`` (already in race order) against the
    ``incumbent`` accuracy (0–100; None: nothing to beat, everything is scored in full). One
    batch per rung for all survivors; see the module docstring for the rule."""
    cfg = config or RacingConfig()
    total = len(examples)
    rungs = cfg.rungs(total) if total else []
    alpha = cfg.delta / max(1, len(rungs))
    parts: dict[str, list[Evaluation]] = {ins: [] for ins in instructions}
    history: dict[str, list[tuple[int, int]]] = {ins: [] for ins in instructions}
    bounds: dict[str, float] = dict.fromkeys(instructions, 100.0)
    alive = list(parts)
    done_n = 0
    for n in rungs:
        if not alive:
            break
        evals = await evaluate(list(alive), examples[done_n:n])
        for ins, ev in zip(list(alive), evals, strict=True):
            parts[ins].append(ev)
            correct = _successes(parts[ins])
            history[ins].append((n, correct))
            bounds[ins] = 100.0 * upper_bound(correct, n, total, alpha)
            ceiling = max(bounds[ins], 100.0 * correct / n)
            if n < total and incumbent is not None and ceiling < incumbent:
                alive.remove(ins)
        done_n = n
    return [
        RaceOutcome(combine(parts[ins]), total, history[ins][-1][0] < total, bounds[ins], history[ins])
        for ins in instructions
    ]
