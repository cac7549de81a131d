"""Paired tests for instruction comparisons: McNemar's exact p-value and the paired bootstrap."""

from __future__ import annotations

import math

import pytest

from promptopt.evaluators.stats import compare_paired, mcnemar_exact, paired_bootstrap


def test_mcnemar_exact_known_values() -> None:
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(5, 5) == 1.0
    assert mcnemar_exact(10, 0) == pytest.approx(2 / 2**10)  # 0.001953125
    # b=1, c=9: 2 * (C(10,0)+C(10,1)) / 2^10 = 22/1024
    assert mcnemar_exact(1, 9) == pytest.approx(22 / 1024)
    assert mcnemar_exact(9, 1) == mcnemar_exact(1, 9)


def test_compare_paired_counts_discordant_pairs_and_failed_as_wrong() -> None:
    a = [1, 1, 1, 0, None, 1]
    b = [1, 0, 0, 1, 1, 1]
    c = compare_paired(a, b, n_boot=2000)
    assert (c.only_a, c.only_b) == (2, 2)
    assert c.acc_a == pytest.approx(400 / 6) and c.acc_b == pytest.approx(400 / 6)
    assert c.diff == pytest.approx(c.acc_a - c.acc_b)
    assert c.ci_low <= c.diff <= c.ci_high
    assert c.p_value == 1.0


def test_paired_bootstrap_is_tight_for_identical_and_seeded() -> None:
    same = [1, 0, 1, 1, 0] * 8
    assert paired_bootstrap(same, same) == (0.0, 0.0)
    a, b = [1] * 30 + [0] * 10, [0] * 30 + [1] * 10
    assert paired_bootstrap(a, b, seed=3) == paired_bootstrap(a, b, seed=3)
    lo, hi = paired_bootstrap(a, b)
    assert 0 < lo < 50 < hi
    assert all(math.isnan(x) for x in paired_bootstrap([], []))
    with pytest.raises(ValueError, match="equal lengths"):
        paired_bootstrap([1], [1, 0])
