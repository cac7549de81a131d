"""TSP solvers (pure functions) and the TSP task's parsing, scoring and report."""

from __future__ import annotations

import asyncio
import random

import pytest

from promptopt.errors import ConfigError
from promptopt.tasks import tsp_solvers as S
from promptopt.tasks.base import Candidate, Rejected
from promptopt.tasks.tsp import TSPTask


def points(n: int, seed: int) -> list[tuple[int, int]]:
    r = random.Random(seed)
    return [(r.randint(-100, 100), r.randint(-100, 100)) for _ in range(n)]


@pytest.mark.parametrize("seed", range(4))
def test_held_karp_equals_brute_force_on_7(seed: int) -> None:
    pts = points(7, seed)
    tour, length = S.held_karp(pts)
    _, brute = S.brute_force(pts)
    assert length == pytest.approx(brute)
    assert S.is_valid_tour(tour, 7) and S.tour_length(pts, tour) == pytest.approx(length)


@pytest.mark.parametrize("seed", range(3))
def test_milp_matches_held_karp(seed: int) -> None:
    pts = points(11, seed)
    exact = S.milp_tsp(pts)
    assert exact.exact and exact.method == "milp"
    assert exact.length == pytest.approx(S.held_karp(pts)[1])
    assert S.is_valid_tour(exact.tour, 11)


def test_exact_tsp_picks_the_solver() -> None:
    assert S.exact_tsp(points(12, 0)).method == "held-karp"
    big = S.exact_tsp(points(25, 0))
    assert big.method == "milp" and big.exact
    assert big.length <= S.tour_length(points(25, 0), S.two_opt(points(25, 0))) + 1e-6
    with pytest.raises(ValueError):
        S.held_karp(points(13, 0))


@pytest.mark.parametrize("seed", range(5))
def test_heuristics_give_valid_tours_and_two_opt_never_worsens(seed: int) -> None:
    pts = points(15, seed)
    nn, fi, fio = S.nearest_neighbour(pts), S.farthest_insertion(pts), S.farthest_insertion_opro(pts)
    assert S.is_valid_tour(nn, 15) and S.is_valid_tour(fi, 15) and S.is_valid_tour(fio, 15)
    start = [0, *random.Random(seed).sample(range(1, 15), 14)]
    improved = S.two_opt(pts, start)
    assert S.is_valid_tour(improved, 15)
    assert S.tour_length(pts, improved) <= S.tour_length(pts, start) + 1e-9
    assert S.tour_length(pts, S.two_opt(pts, nn)) <= S.tour_length(pts, nn) + 1e-9


def test_is_valid_tour() -> None:
    assert S.is_valid_tour([0, 2, 1], 3)
    assert not S.is_valid_tour([1, 0, 2], 3)
    assert not S.is_valid_tour([0, 1, 1], 3)
    assert not S.is_valid_tour([0, 1], 3)


@pytest.fixture(scope="module")
def task() -> TSPTask:
    return TSPTask(n=8, seed=0)


def test_points_are_seeded_integers_in_the_square(task: TSPTask) -> None:
    assert len(task.points) == 8
    assert all(-100 <= x <= 100 and -100 <= y <= 100 and isinstance(x, int) for x, y in task.points)
    assert TSPTask(n=8, seed=0).points == task.points != TSPTask(n=8, seed=1).points


@pytest.mark.parametrize(
    "text",
    [
        "<trace>0,3,1,2,4,5,6,7</trace>",
        "Here: <trace> 0, 3, 1, 2, 4, 5, 6, 7 </trace> done",
        "<trace>9</trace> oops, better: <TRACE>0 3 1 2 4 5 6 7</TRACE>",
    ],
)
def test_parse_good_traces(task: TSPTask, text: str) -> None:
    c = task.parse(text)
    assert isinstance(c, Candidate) and c.text == "0,3,1,2,4,5,6,7" and c.value == (0, 3, 1, 2, 4, 5, 6, 7)


@pytest.mark.parametrize(
    ("text", "status"),
    [
        ("0,3,1,2,4,5,6,7", "unparseable"),
        ("<trace>0,3,1,2,4,5,6,7", "unparseable"),
        ("<trace>0,a,1</trace>", "unparseable"),
        ("<trace>0,-3,1,2,4,5,6,7</trace>", "unparseable"),
        ("<trace>0,１,2,3,4,5,6,7</trace>", "unparseable"),
        ("<trace>0,1,2,3,4,5,6</trace>", "invalid"),
        ("<trace>0,1,2,3,4,5,6,6</trace>", "invalid"),
        ("<trace>0,1,2,3,4,5,6,8</trace>", "invalid"),
        ("<trace>1,0,2,3,4,5,6,7</trace>", "invalid"),
        ("<trace>0,1,2,3,4,5,6,7,0</trace>", "invalid"),
    ],
)
def test_parse_garbage(task: TSPTask, text: str, status: str) -> None:
    r = task.parse(text)
    assert isinstance(r, Rejected) and r.status == status, r


def test_parse_a_node_id_too_long_for_int_is_invalid_not_a_crash(task: TSPTask) -> None:
    """A degenerate "9999..." run (> 4300 digits) made int() raise ValueError out of parse."""
    r = task.parse("<trace>0," + "9" * 5000 + ",1,2,3,4,5,6</trace>")
    assert isinstance(r, Rejected) and r.status == "invalid" and "0..7" in r.reason
    assert isinstance(task.parse("<trace>00000000,3,1,2,4,5,6,7</trace>"), Candidate)


def test_initial_tours_and_scores(task: TSPTask) -> None:
    cands = task.initial_candidates(random.Random(0))
    assert len(cands) == 5 and len({c.text for c in cands}) == 5
    assert all(S.is_valid_tour(c.value, 8) for c in cands)
    scores = asyncio.run(task.ascore(cands))
    assert [s.score for s in scores] == pytest.approx([S.tour_length(task.points, c.value) for c in cands])
    assert len(TSPTask(n=3).initial_candidates(random.Random(0))) == 2  # only 2 tours exist


def test_describe_lists_points_and_paper_format(task: TSPTask) -> None:
    d = task.describe()
    x0, y0 = task.points[0]
    assert f"(0): ({x0}, {y0}), (1):" in d.problem
    assert d.entry_template.format(text="0,1", score="12") == "<trace> 0,1 </trace>\nlength:\n12"
    assert "<trace>" in d.output_format


def test_final_report_gaps(task: TSPTask) -> None:
    opt = S.held_karp(task.points)
    rep = task.final_report(task.candidate(opt[0]))
    assert rep["best"]["gap_percent"] == pytest.approx(0.0, abs=1e-9)
    assert rep["optimum"]["exact"] and rep["optimum"]["length"] == pytest.approx(opt[1])
    assert set(rep["baselines"]) == {
        "nearest_neighbour",
        "farthest_insertion",
        "farthest_insertion_opro",
        "two_opt",
    }
    assert all(b["gap_percent"] >= -1e-9 for b in rep["baselines"].values())
    assert task.optimum == pytest.approx(opt[1])


def test_bad_options() -> None:
    with pytest.raises(ConfigError):
        TSPTask(n=2)
    with pytest.raises(ConfigError):
        TSPTask(low=5, high=5)
