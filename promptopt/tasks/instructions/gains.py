"""How sure a run can be that its instruction beats the baselines: paired test gains with intervals.

Why: "best minus best baseline: +0.05" on 40 test examples says nothing about whether the search
found anything; on the small test sets a user can afford, a difference of several points is often
noise (the IFBench bench saw +5 points with an interval from 0 to +12.5 on 40 prompts). Every run
therefore reports, for the reported instruction against each baseline (and against the training
best when validation picked another), the mean per-example difference on the *same* test examples
with a seeded percentile bootstrap 95 % interval, and whether that interval lies above 0.

Per-example values are the metric's (1 / 0, or a fraction for a graded metric such as ``ifbench``
or a judge's 4/5); a failed request counts 0, as the accuracy counts it. An example with no value
for either side (not evaluated) is left out of the pair. Points are percent of full marks, the unit
of the reported accuracies.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from promptopt.evaluators.stats import bootstrap_mean_ci

#: bootstrap replicates (seeded: the same run reports the same interval)
N_BOOT = 10_000
#: the interval's coverage
CONFIDENCE = 0.95
#: the rows compared with ``best``, in the order the report lists them
OTHERS = ("empty", "step_by_step", "solve", "train_best", "best_without_demos")


def _value(x: Any) -> float:
    return 0.0 if x is None or isinstance(x, str) else float(x)


def paired_gain(best: Sequence[Any], other: Sequence[Any], n_boot: int = N_BOOT) -> dict[str, Any] | None:
    """``best − other`` over the test examples both have, in points, with its 95 % interval and
    the counts of examples each side did better on; None when the lists do not pair (different
    lengths: not the same test examples) or hold nothing."""
    if len(best) != len(other) or not best:
        return None
    diffs = [_value(a) - _value(b) for a, b in zip(best, other, strict=True)]
    lo, hi = bootstrap_mean_ci(diffs, n_boot=n_boot, seed=0, confidence=CONFIDENCE)
    return {
        "n": len(diffs),
        "diff": round(100.0 * sum(diffs) / len(diffs), 2),
        "ci95": [round(lo, 2), round(hi, 2)],
        "better": sum(1 for d in diffs if d > 0),
        "worse": sum(1 for d in diffs if d < 0),
        "above_zero": lo > 0,
    }


def gains_over_others(per_example: Mapping[str, Sequence[Any]], n_boot: int = N_BOOT) -> dict[str, Any]:
    """``best`` against every other row of ``per_example`` that pairs with it (see the module
    docstring); ``{}`` when there is no ``best``."""
    best = per_example.get("best")
    if not best:
        return {}
    out = {}
    for name in OTHERS:
        gain = paired_gain(best, per_example[name], n_boot) if name in per_example else None
        if gain is not None:
            out[name] = gain
    return out


def gain_line(name: str, gain: Mapping[str, Any]) -> str:
    """One line: ``best vs empty: +7.9 points [+0.8, +15.4] (paired, 95 %, 40 examples; better on 9,
    worse on 3) — above 0`` (or ``— may be noise``)."""
    lo, hi = gain["ci95"]
    if not gain.get("better") and not gain.get("worse"):
        verdict = "the same on every example"
    else:
        verdict = "above 0" if gain.get("above_zero") else "interval includes 0: may be noise"
    return (
        f"best vs {name}: {gain['diff']:+.1f} points [{lo:+.1f}, {hi:+.1f}] (paired, 95 %, {gain['n']} "
        f"examples; better on {gain['better']}, worse on {gain['worse']}): {verdict}"
    )
