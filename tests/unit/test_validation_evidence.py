"""The run's word on how clearly validation picked its instruction (opro/stats.validation_evidence).

Why: on IFBench's 10 validation prompts every starting instruction scored 0 on all 10, so a
candidate at 10 or 20 won by one or two prompts; the run should say its pick may be noise.
"""

from __future__ import annotations

from promptopt.optimizers.base import Trial
from promptopt.optimizers.opro.stats import search_stats, validation_evidence, validation_warning


def trial(step: int, status: str, text: str, val: list[float | None] | None) -> Trial:
    score = None if val is None else 100.0 * sum(v or 0.0 for v in val) / len(val)
    return Trial(step, 0, status, text, score, info={} if val is None else {"val": val})  # type: ignore[arg-type]


def test_a_lead_of_one_example_in_ten_is_called_noise() -> None:
    trials = [trial(0, "initial", "start", [0.0] * 10), trial(1, "scored", "new", [1.0] + [0.0] * 9)]
    ev = validation_evidence(trials, "max")
    assert ev is not None
    assert ev["n"] == 10 and ev["lead"] == 10.0 and ev["start"] == 0.0 and ev["best"] == 10.0
    assert ev["ci95"][0] == 0.0 and not ev["above_zero"]
    line = validation_warning(ev)
    assert line is not None and "+10.0 points [+0.0," in line and "on 10 examples" in line
    assert search_stats(trials, "max", None)["validation_evidence"] == ev


def test_a_clear_lead_is_not_a_warning() -> None:
    trials = [trial(0, "initial", "start", [0.0, None] * 20), trial(2, "scored", "new", [1.0, 0.5] * 20)]
    ev = validation_evidence(trials, "max")
    assert ev is not None and ev["lead"] == 75.0 and ev["above_zero"]  # None counts 0, as the score does
    assert validation_warning(ev) is None


def test_nothing_to_say_without_per_example_values_or_when_the_start_won() -> None:
    start = trial(0, "initial", "start", [1.0, 0.0])
    assert validation_evidence([start, trial(1, "scored", "worse", [0.0, 0.0])], "max") is None
    assert validation_evidence([trial(0, "initial", "a", None), trial(1, "scored", "b", None)], "max") is None
    other_size = trial(1, "scored", "b", [1.0, 1.0, 1.0])
    assert validation_evidence([start, other_size], "max") is None
    assert validation_warning(None) is None and validation_warning({"above_zero": True}) is None
