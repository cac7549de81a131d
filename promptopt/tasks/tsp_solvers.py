"""Classical TSP solvers used as baselines and as the optimum for OPRO's TSP task.

All functions are pure: points in, tour (a list of node ids starting at 0) and length out. A tour is
closed: its length includes the edge from the last node back to 0.

- ``nearest_neighbour``: greedy, O(n²).
- ``farthest_insertion``: the classic rule (Rosenkrantz, Stearns & Lewis 1977): insert the node
  farthest from the tour at its cheapest position, O(n²).
- ``farthest_insertion_opro``: the OPRO reference's "farthest insertion" baseline, a different rule:
  insert the node whose *cheapest insertion* adds the most length, O(n³) (numpy, fine to n=1000).
- ``two_opt``: local search from a start tour; never returns a longer tour than its start.
- ``held_karp``: exact dynamic programme over subsets, O(2ⁿ·n²); for n ≤ ``HELD_KARP_MAX_N``.
- ``milp_tsp``: exact for larger n through scipy's HiGHS MILP with subtour-elimination cuts added
  in a loop (lazy constraints); with a time limit it may return only a lower bound.
- ``exact_tsp``: picks one of the two.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

Point = tuple[float, float]
HELD_KARP_MAX_N = 12


def distance_matrix(points: Sequence[Point]) -> np.ndarray:
    """Euclidean distances between all pairs of points."""
    p = np.asarray(points, dtype=float).reshape(-1, 2)
    diff = p[:, None, :] - p[None, :, :]
    return np.sqrt((diff**2).sum(-1))


def tour_length(points: Sequence[Point], tour: Sequence[int]) -> float:
    """Length of the closed tour (back to its first node)."""
    return _length(distance_matrix(points), tour)


def _length(d: np.ndarray, tour: Sequence[int]) -> float:
    if len(tour) < 2:
        return 0.0
    t = list(tour)
    return float(sum(d[a, b] for a, b in zip(t, t[1:] + t[:1], strict=True)))


def is_valid_tour(tour: Sequence[int], n: int) -> bool:
    """Visits every node 0..n-1 exactly once and starts at 0."""
    return len(tour) == n and n > 0 and tour[0] == 0 and sorted(tour) == list(range(n))


def nearest_neighbour(points: Sequence[Point]) -> list[int]:
    """From node 0, always go to the nearest unvisited node (ties: lowest id)."""
    d = distance_matrix(points)
    n = len(d)
    tour = [0]
    left = set(range(1, n))
    while left:
        last = tour[-1]
        nxt = min(left, key=lambda j: (d[last, j], j))
        tour.append(nxt)
        left.remove(nxt)
    return tour


def farthest_insertion(points: Sequence[Point]) -> list[int]:
    """Classic farthest insertion: take the node whose distance to the nearest tour node is
    largest and insert it where it adds least length (ties: lowest id, earliest position).

    Starts from node 0 alone, as the OPRO reference does. This is *not* the rule of the
    reference's ``farthest_insertion`` baseline (it picks by cheapest-insertion cost, not by
    distance); that one is :func:`farthest_insertion_opro`.
    """
    d = distance_matrix(points)
    n = len(d)
    if n <= 2:
        return list(range(n))
    tour = [0]
    left = set(range(1, n))
    dist_to_tour = d[0].copy()
    while left:
        far = max(left, key=lambda j: (dist_to_tour[j], -j))
        best_pos, best_add = 1, math.inf
        for i in range(len(tour)):
            a, b = tour[i], tour[(i + 1) % len(tour)]
            add = d[a, far] + d[far, b] - (d[a, b] if len(tour) > 1 else 0.0)
            if add < best_add - 1e-12:
                best_pos, best_add = i + 1, add
        tour.insert(best_pos, far)
        left.remove(far)
        dist_to_tour = np.minimum(dist_to_tour, d[far])
    return tour


def farthest_insertion_opro(points: Sequence[Point]) -> list[int]:
    """The OPRO reference's TSP baseline (``solve_tsp(..., "farthest_insertion")`` in
    ``opro/optimization/optimize_tsp.py``): for every node not yet in the tour find its cheapest
    insertion, then insert the node whose cheapest insertion is the *largest*, there.

    Starts from node 0 alone; ties go to the lowest node id and the earliest position (the
    reference scans both in that order and keeps the first strict improvement). One difference:
    the reference compares tour lengths rounded to its display decimals (``int()`` at 0 decimals),
    which can only change how near-ties break; this compares exact lengths.
    """
    d = distance_matrix(points)
    n = len(d)
    if n <= 2:
        return list(range(n))
    tour = [0]
    left = list(range(1, n))  # ascending ids: argmax keeps the first, as the reference does
    while left:
        t = np.asarray(tour)
        nxt = np.roll(t, -1)  # edge i runs tour[i] -> tour[i+1] (closing edge last): position i+1
        rem = np.asarray(left)
        cost = d[np.ix_(rem, t)] + d[np.ix_(rem, nxt)] - d[t, nxt][None, :]  # 1 node: d[0, 0] = 0
        cheapest = cost.min(axis=1)
        k = int(np.argmax(cheapest))
        pos = int(np.argmin(cost[k])) + 1
        tour.insert(pos, left.pop(k))
    return tour


def two_opt(points: Sequence[Point], start: Sequence[int] | None = None, max_rounds: int = 1000) -> list[int]:
    """Improve ``start`` (default: nearest neighbour) by reversing segments while that shortens it.

    Node 0 stays first because only segments [i..j] with i ≥ 1 are reversed.
    """
    d = distance_matrix(points)
    n = len(d)
    tour = list(start) if start is not None else nearest_neighbour(points)
    if n < 4:
        return tour
    for _ in range(max_rounds):
        improved = False
        for i in range(1, n - 1):
            for j in range(i + 1, n):
                a, b = tour[i - 1], tour[i]
                c, e = tour[j], tour[(j + 1) % n]
                delta = d[a, c] + d[b, e] - d[a, b] - d[c, e]
                if delta < -1e-9:
                    tour[i : j + 1] = reversed(tour[i : j + 1])
                    improved = True
        if not improved:
            break
    return tour


def held_karp(points: Sequence[Point]) -> tuple[list[int], float]:
    """Exact shortest tour by dynamic programming over subsets (n ≤ HELD_KARP_MAX_N)."""
    d = distance_matrix(points)
    n = len(d)
    if n > HELD_KARP_MAX_N:
        raise ValueError(f"held_karp is limited to n <= {HELD_KARP_MAX_N}, got {n}")
    if n <= 3:
        tour = list(range(n))
        return tour, _length(d, tour)
    m = n - 1  # nodes 1..n-1 are bits 0..m-1
    full = 1 << m
    cost = np.full((full, m), np.inf)
    parent = np.full((full, m), -1, dtype=np.int64)
    for k in range(m):
        cost[1 << k, k] = d[0, k + 1]
    for mask in range(1, full):
        for k in range(m):
            if not mask & (1 << k):
                continue
            c = cost[mask, k]
            if not np.isfinite(c):
                continue
            for j in range(m):
                if mask & (1 << j):
                    continue
                nm = mask | (1 << j)
                v = c + d[k + 1, j + 1]
                if v < cost[nm, j]:
                    cost[nm, j] = v
                    parent[nm, j] = k
    last_mask = full - 1
    ends = cost[last_mask] + d[1:, 0]
    k = int(np.argmin(ends))
    best = float(ends[k])
    path = []
    mask = last_mask
    while k >= 0:
        path.append(k + 1)
        pk = int(parent[mask, k])
        mask &= ~(1 << k)
        k = pk
    tour = [0] + path[::-1]
    return tour, best


def brute_force(points: Sequence[Point]) -> tuple[list[int], float]:
    """Exact by enumeration (tests only; n ≤ 9)."""
    d = distance_matrix(points)
    n = len(d)
    best_t, best_l = list(range(n)), math.inf
    for perm in itertools.permutations(range(1, n)):
        t = [0, *perm]
        length = _length(d, t)
        if length < best_l:
            best_t, best_l = t, length
    return best_t, best_l


@dataclass(frozen=True)
class ExactSolution:
    """The optimum (or, when ``exact`` is False, the best tour found and a lower ``bound``)."""

    tour: list[int]
    length: float
    bound: float
    method: str
    exact: bool


def _components(n: int, edges: list[tuple[int, int]]) -> list[list[int]]:
    adj: dict[int, list[int]] = {i: [] for i in range(n)}
    for a, b in edges:
        adj[a].append(b)
        adj[b].append(a)
    seen, comps = set(), []
    for s in range(n):
        if s in seen:
            continue
        stack, comp = [s], []
        seen.add(s)
        while stack:
            u = stack.pop()
            comp.append(u)
            for v in adj[u]:
                if v not in seen:
                    seen.add(v)
                    stack.append(v)
        comps.append(sorted(comp))
    return comps


def _edges_to_tour(n: int, edges: list[tuple[int, int]]) -> list[int]:
    adj: dict[int, list[int]] = {i: [] for i in range(n)}
    for a, b in edges:
        adj[a].append(b)
        adj[b].append(a)
    tour, prev = [0], -1
    while len(tour) < n:
        cur = tour[-1]
        nxt = next(v for v in adj[cur] if v != prev)
        prev = cur
        tour.append(nxt)
    return tour


def milp_tsp(points: Sequence[Point], time_limit: float = 60.0, max_rounds: int = 200) -> ExactSolution:
    """Symmetric TSP as a MILP (x_e ∈ {0,1} per edge, degree 2 per node) solved by HiGHS.

    Subtour elimination is lazy: solve, find the connected components of the chosen edges, add
    ``sum(x_e for e inside S) ≤ |S| − 1`` for each component S, and solve again until one tour is
    left. If the time limit runs out, the result is the 2-opt tour with HiGHS's lower bound, and
    ``exact`` is False.
    """
    from scipy.optimize import Bounds, LinearConstraint, milp  # imported on use: scipy is slow to load
    from scipy.sparse import lil_matrix

    d = distance_matrix(points)
    n = len(d)
    if n <= 3:
        t = list(range(n))
        length = _length(d, t)
        return ExactSolution(t, length, length, "trivial", True)
    edges = [(i, j) for i in range(n) for j in range(i + 1, n)]
    index = {e: k for k, e in enumerate(edges)}
    c = np.array([d[i, j] for i, j in edges])
    deg = lil_matrix((n, len(edges)))
    for k, (i, j) in enumerate(edges):
        deg[i, k] = 1
        deg[j, k] = 1
    constraints = [LinearConstraint(deg.tocsr(), 2, 2)]
    cuts: list[np.ndarray] = []
    fallback = two_opt(points, farthest_insertion(points))
    fallback_len = _length(d, fallback)
    bound = 0.0
    deadline = time.monotonic() + time_limit
    for _ in range(max_rounds):
        left = deadline - time.monotonic()
        if left <= 0:
            break
        res = milp(
            c,
            integrality=np.ones(len(edges)),
            bounds=Bounds(0, 1),
            constraints=_with_cuts(constraints, cuts, n),
            options={"time_limit": max(left, 0.1)},
        )
        if res.x is None:
            break
        bound = max(bound, float(getattr(res, "mip_dual_bound", 0.0) or 0.0))
        chosen = [edges[k] for k in np.flatnonzero(res.x > 0.5)]
        comps = _components(n, chosen)
        if len(comps) == 1:
            if res.status != 0:  # time limit hit on a feasible but unproven tour
                break
            tour = _edges_to_tour(n, chosen)
            length = _length(d, tour)
            return ExactSolution(tour, length, length, "milp", True)
        for comp in comps:
            row = np.zeros(len(edges))
            for a, b in itertools.combinations(comp, 2):
                row[index[(a, b)]] = 1
            cuts.append(row)
    return ExactSolution(fallback, fallback_len, min(bound, fallback_len), "milp-bound", False)


def _with_cuts(base: list, cuts: list[np.ndarray], n: int) -> list:
    """Degree constraints plus the subtour cuts gathered so far (|S| − 1 on the edges inside S)."""
    from scipy.optimize import LinearConstraint

    if not cuts:
        return base
    a = np.vstack(cuts)
    sizes = a.sum(1)  # |S|(|S|−1)/2 edges inside S
    s = (1 + np.sqrt(1 + 8 * sizes)) / 2
    return [*base, LinearConstraint(a, -np.inf, np.round(s) - 1)]


def exact_tsp(points: Sequence[Point], time_limit: float = 60.0) -> ExactSolution:
    """Held–Karp for n ≤ HELD_KARP_MAX_N, the MILP beyond."""
    if len(points) <= HELD_KARP_MAX_N:
        tour, length = held_karp(points)
        return ExactSolution(tour, length, length, "held-karp", True)
    return milp_tsp(points, time_limit=time_limit)
