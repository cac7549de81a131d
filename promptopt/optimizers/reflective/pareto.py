"""The Pareto pool: which candidate the next reflection starts from.

GEPA's selection (``gepa_utils.select_program_candidate_from_pareto_front``), done over per-example
validation values:

1. for each validation example, its *front*: the candidates with the highest value on it (ties all
   belong; an example everyone fails has everyone in its front);
2. drop *dominated* candidates: one whose every front also holds another surviving candidate, so
   removing it leaves no example without a best candidate. Checked weakest first (lowest mean
   value, then the older candidate), as GEPA does; this removes every candidate that another
   dominates in the classical sense (at least as good everywhere) and exact ties but one;
3. sample a parent with probability proportional to the number of fronts it is in.

Why not just the best mean: a candidate best on a few examples no one else gets right carries a
lesson the best-on-average one lacks; sampling by coverage keeps exploring those while favouring
the broadly good. One pass, weakest first, equals GEPA's repeat-until-stable loop: removing a
candidate only shrinks fronts, so one found undominated stays undominated.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

#: values closer than this count as equal (metric values are fractions in [0, 1])
TIE = 1e-9


def fronts(values: Sequence[Sequence[float]]) -> list[set[int]]:
    """For each example, the indices of the candidates with the highest value on it. ``values[c]``
    holds candidate ``c``'s value on every example (all of the same length)."""
    if not values:
        return []
    n = len(values[0])
    if any(len(v) != n for v in values):
        raise ValueError("every candidate needs a value on every example")
    out = []
    for j in range(n):
        top = max(v[j] for v in values)
        out.append({c for c, v in enumerate(values) if v[j] >= top - TIE})
    return out


def undominated(values: Sequence[Sequence[float]]) -> set[int]:
    """The candidates left after dropping dominated ones (see the module docstring)."""
    fr = fronts(values)
    if not fr:  # no examples: nothing tells the candidates apart
        return set(range(len(values)))
    alive: set[int] = set().union(*fr)
    means = [sum(v) / len(v) if v else 0.0 for v in values]
    for c in sorted(alive, key=lambda c: (means[c], c)):
        if all(len(f & alive) > 1 for f in fr if c in f):
            alive.discard(c)
    return alive


def coverage(values: Sequence[Sequence[float]]) -> dict[int, int]:
    """Surviving candidate → how many examples it is best on (its sampling weight)."""
    alive = undominated(values)
    counts = dict.fromkeys(sorted(alive), 0)
    for f in fronts(values):
        for c in f & alive:
            counts[c] += 1
    return counts


def select_parent(values: Sequence[Sequence[float]], rng: random.Random) -> int:
    """A parent drawn with probability proportional to its coverage (one draw of ``rng``)."""
    if not values:
        raise ValueError("the pool is empty")
    weights = coverage(values)
    if not any(weights.values()):  # no validation examples: every candidate is as good
        return rng.randrange(len(values))
    ids = list(weights)
    return rng.choices(ids, weights=[weights[c] for c in ids])[0]
