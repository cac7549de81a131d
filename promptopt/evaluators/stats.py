"""Paired comparisons of two instructions (or systems) graded on the same examples, and the
win rate of a judged candidate over a baseline.

Why paired: both are scored on the *same* questions, so the informative data are the examples on
which they disagree. :func:`mcnemar_exact` tests whether the disagreements split evenly (exact
two-sided binomial test on the discordant pairs); :func:`paired_bootstrap` gives a percentile
interval for the accuracy difference by resampling examples (pairs kept together). Pure
functions over 0/1 lists; ``None`` (a failed request) counts as wrong, as in the accuracy
figures.

:func:`win_rate` is the counterpart for judged comparisons: win/tie/loss counts and
ΔWR = win% − loss% (the BPO paper's headline number), with a seeded percentile bootstrap 95 %
confidence interval over items.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class PairedComparison:
    """A vs B on the same n examples: accuracies (percent), the difference A − B (percent points)
    with its bootstrap interval, the discordant counts and McNemar's exact p-value."""

    n: int
    acc_a: float
    acc_b: float
    diff: float
    ci_low: float
    ci_high: float
    only_a: int  # A right, B wrong
    only_b: int  # B right, A wrong
    p_value: float
    confidence: float = 0.95

    def to_json(self) -> dict[str, Any]:
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in asdict(self).items()}


def _as_bits(xs: Sequence[int | bool | None]) -> np.ndarray:
    return np.array([1.0 if x else 0.0 for x in xs])


def mcnemar_exact(only_a: int, only_b: int) -> float:
    """Two-sided exact McNemar p-value: P(a split at least this uneven) under Binomial(b + c, ½).

    With no discordant pairs there is no evidence either way: p = 1."""
    if only_a < 0 or only_b < 0:
        raise ValueError("discordant counts must be >= 0")
    m = only_a + only_b
    if m == 0:
        return 1.0
    k = min(only_a, only_b)
    tail = sum(math.comb(m, i) for i in range(k + 1)) / 2.0**m
    return min(1.0, 2.0 * tail)


def paired_bootstrap(
    a: Sequence[int | bool | None],
    b: Sequence[int | bool | None],
    *,
    n_boot: int = 10_000,
    seed: int = 0,
    confidence: float = 0.95,
) -> tuple[float, float]:
    """Percentile interval of mean(a) − mean(b) in percent points, resampling example indices."""
    if len(a) != len(b):
        raise ValueError(f"paired samples need equal lengths, got {len(a)} and {len(b)}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    if not a:
        return math.nan, math.nan
    return bootstrap_mean_ci(_as_bits(a) - _as_bits(b), n_boot=n_boot, seed=seed, confidence=confidence)


def bootstrap_mean_ci(
    values: Sequence[float] | np.ndarray, *, n_boot: int = 10_000, seed: int = 0, confidence: float = 0.95
) -> tuple[float, float]:
    """Percentile interval of 100 × mean(values), resampling the items with replacement
    (``default_rng(seed)``): the one bootstrap behind paired accuracy differences, ΔWR and paired
    ΔWR differences (per-item values such as win 1 / tie 0 / loss −1)."""
    d = np.asarray(values, dtype=float)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(d), size=(n_boot, len(d)))
    boots = d[idx].mean(axis=1) * 100.0
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(boots, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def compare_paired(
    a: Sequence[int | bool | None],
    b: Sequence[int | bool | None],
    *,
    n_boot: int = 10_000,
    seed: int = 0,
    confidence: float = 0.95,
) -> PairedComparison:
    """Everything above for one pair of per-example outcome lists (A first)."""
    lo, hi = paired_bootstrap(a, b, n_boot=n_boot, seed=seed, confidence=confidence)
    xa, xb = _as_bits(a), _as_bits(b)
    n = len(xa)
    only_a = int(((xa == 1) & (xb == 0)).sum())
    only_b = int(((xa == 0) & (xb == 1)).sum())
    acc_a = 100.0 * xa.mean() if n else math.nan
    acc_b = 100.0 * xb.mean() if n else math.nan
    return PairedComparison(
        n, float(acc_a), float(acc_b), float(acc_a - acc_b), lo, hi, only_a, only_b,
        mcnemar_exact(only_a, only_b), confidence,
    )  # fmt: skip


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
    values = [1.0 if o == "win" else -1.0 if o == "loss" else 0.0 for o in outcomes]
    low, high = bootstrap_mean_ci(values, n_boot=n_boot, seed=seed, confidence=confidence)
    return WinRate(
        n,
        w,
        t,
        lo,
        100.0 * w / n,
        100.0 * t / n,
        100.0 * lo / n,
        100.0 * (w - lo) / n,
        low,
        high,
        confidence,
    )
