"""The linear-regression task: data, loss, parsing untrusted output, optimum, random search."""

from __future__ import annotations

import asyncio
import random

import numpy as np
import pytest

from promptopt.errors import ConfigError
from promptopt.tasks.base import Candidate, Rejected, make_task
from promptopt.tasks.linear_regression import LinearRegressionTask, random_search


@pytest.fixture(scope="module")
def task() -> LinearRegressionTask:
    return LinearRegressionTask()


def test_data_follows_the_paper_setup(task: LinearRegressionTask) -> None:
    assert task.x.tolist() == list(range(1, 51))
    residual = task.y - (15 * task.x + 14)
    assert abs(residual.mean()) < 0.5 and 0.5 < residual.std() < 1.5  # N(0, 1) noise
    assert task.loss(15, 14) == pytest.approx(float(residual @ residual))


def test_optimum_is_the_best_integer_pair(task: LinearRegressionTask) -> None:
    w, b, loss = task.optimum_pair()
    grid = [(wi, bi, task.loss(wi, bi)) for wi in range(5, 26) for bi in range(-10, 40)]
    assert loss == pytest.approx(min(g[2] for g in grid))
    assert (w, b) == min(grid, key=lambda g: g[2])[:2]
    assert task.optimum == loss


@pytest.mark.parametrize(
    ("text", "pair"),
    [
        ("[15, 14]", (15.0, 14.0)),
        ("Let me think... I choose [w, b] = [16, 13]", (16.0, 13.0)),
        ("[w=17.4, b=12.6]", (17.0, 13.0)),
        ("first [1, 2] then finally [ -3 , +4 ]", (-3.0, 4.0)),
        ("[1e1, 2.5]", (10.0, 2.0)),  # banker's rounding of 2.5 -> 2
        ("Here's a new pair:\nw=20, b=19\nvalue: 599456", (20.0, 19.0)),  # labelled, no brackets
        ("w = 1, b = 2 ... so [w, b] = [3, 4]", (3.0, 4.0)),  # brackets win
        # the entries' "w=15, b=14" with a colon, as JSON, or one per line
        ("New pair: w: 15, b: 14", (15.0, 14.0)),
        ('{"w":15,"b":14}', (15.0, 14.0)),
        ('```json\n{"w": -3.0, "b": 14}\n```', (-3.0, 14.0)),
        ("{'w': 15, 'b': 14}", (15.0, 14.0)),
        ("w: 15\nb: 14", (15.0, 14.0)),
        ("[w: 15, b: 14]", (15.0, 14.0)),
    ],
)
def test_parse_good_outputs(task: LinearRegressionTask, text: str, pair: tuple[float, float]) -> None:
    c = task.parse(text)
    assert isinstance(c, Candidate)
    assert c.value == pair
    assert c.text == f"w={int(pair[0])}, b={int(pair[1])}"


@pytest.mark.parametrize(
    ("text", "status"),
    [
        ("", "unparseable"),
        ("w = 15 and b = 14", "unparseable"),
        ("w: 15 and b: 14", "unparseable"),
        ('{"w": 15}', "unparseable"),
        ("[15]", "unparseable"),
        ("[fifteen, fourteen]", "unparseable"),
        ("[__import__('os').system('x'), 1]", "unparseable"),
        ("[1, 2, 3]", "unparseable"),
        ("15, 16", "unparseable"),
        ("the pair [w, b] is what you want", "unparseable"),
        ("w=1e999, b=3", "invalid"),
        ("[1e400, 2]", "invalid"),
        ("[2000000, 3]", "invalid"),
    ],
)
def test_parse_garbage(task: LinearRegressionTask, text: str, status: str) -> None:
    r = task.parse(text)
    assert isinstance(r, Rejected) and r.status == status and r.reason


def test_decimals_keep_fractional_pairs() -> None:
    t = LinearRegressionTask(decimals=1)
    c = t.parse("[15.04, 13.55]")
    assert isinstance(c, Candidate) and c.text == "w=15.0, b=13.6" and c.value == (15.0, 13.6)


def test_a_pair_rounding_to_minus_zero_is_the_same_candidate_as_zero() -> None:
    """[-0.04, 3] rounded to one decimal gave "w=-0.0", which never deduped against "w=0.0"."""
    t = LinearRegressionTask(decimals=1)
    c = t.parse("[-0.04, -0.0]")
    assert isinstance(c, Candidate) and c.text == "w=0.0, b=0.0" == t.parse("[0, 0]").text  # type: ignore[union-attr]


def test_initial_pairs_are_distinct_integers_in_the_box(task: LinearRegressionTask) -> None:
    cands = task.initial_candidates(random.Random(0))
    assert len(cands) == 5 and len({c.text for c in cands}) == 5
    for c in cands:
        w, b = c.value
        assert w == int(w) and b == int(b) and 10 <= w <= 20 and 10 <= b <= 20
    assert [c.text for c in cands] == [c.text for c in task.initial_candidates(random.Random(0))]


def test_scores_and_display(task: LinearRegressionTask) -> None:
    c = task.candidate(15, 14)
    [s] = asyncio.run(task.ascore([c]))
    assert s.score == pytest.approx(task.loss(15, 14)) and s.info == {"w": 15.0, "b": 14.0}
    assert task.format_score(12345.6) == "12346"
    assert task.exemplars(random.Random(0), 3) == []


def test_final_report_and_config_roundtrip(task: LinearRegressionTask) -> None:
    rep = task.final_report(task.candidate(*task.optimum_pair()[:2]))
    assert rep["reached_optimum"] is True
    assert rep["least_squares"]["loss"] <= rep["optimum"]["loss"] <= rep["loss_at_true"] + 1e-9
    again = make_task("linear-regression", **task.config())
    assert np.array_equal(again.y, task.y)
    assert not np.array_equal(LinearRegressionTask(seed=1).y, task.y)
    assert LinearRegressionTask(w_true=3, b_true=-2).optimum_pair()[:2] in {
        (3.0, -2.0),
        (3.0, -1.0),
        (3.0, -3.0),
    }


def test_bad_options() -> None:
    with pytest.raises(ConfigError):
        LinearRegressionTask(num_points=1)
    with pytest.raises(ConfigError):
        LinearRegressionTask(start_low=5, start_high=1)


def test_random_search_baseline(task: LinearRegressionTask) -> None:
    small = random_search(task, 3, seed=0)
    assert small["evaluations"] == 3 and small["best"]["loss"] > task.optimum
    everything = random_search(task, 10_000, seed=0)  # capped at the box: finds the optimum
    assert everything["evaluations"] == 121 and everything["reached_optimum"]
    assert random_search(task, 20, seed=5) == random_search(task, 20, seed=5)
