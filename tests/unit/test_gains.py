"""The paired test gains every instruction run reports (promptopt.tasks.instructions.gains)."""

from __future__ import annotations

from promptopt.tasks.instructions.gains import gain_line, gains_over_others, paired_gain
from promptopt.tasks.instructions.report import gains_section, summary


def test_a_small_lead_on_few_examples_is_called_noise() -> None:
    best = [1, 0, 1, 0, 1, 0, 1, 0, 1, 1]  # 60 %
    other = [1, 0, 1, 0, 1, 0, 1, 0, 0, 1]  # 50 %: one example apart
    gain = paired_gain(best, other)
    assert gain is not None
    assert gain["diff"] == 10.0 and gain["better"] == 1 and gain["worse"] == 0
    assert gain["ci95"][0] == 0.0 and not gain["above_zero"]  # the one example may not be drawn
    assert "may be noise" in gain_line("empty", gain)


def test_graded_values_failures_and_a_clear_win() -> None:
    best = [1.0, 0.5, 1.0, 0.75] * 10
    other = [0.0, None, 0.5, 0.25] * 10  # None: a failed request counts 0, as the accuracy counts it
    gain = paired_gain(best, other)
    assert gain is not None
    assert gain["diff"] == 62.5 and gain["n"] == 40 and gain["above_zero"]
    assert gain["ci95"][0] > 50.0 and gain["ci95"][1] < 75.0
    assert gain_line("empty", gain).endswith(": above 0")


def test_rows_that_do_not_pair_are_left_out() -> None:
    per_example = {"best": [1, 0, 1], "empty": [0, 0, 0], "solve": [1, 1], "other": [0, 0, 0]}
    gains = gains_over_others(per_example, n_boot=200)
    assert set(gains) == {"empty"}  # solve: not the same examples; other: not a row the report compares
    assert paired_gain([], []) is None
    assert gains_over_others({"empty": [1]}) == {}


def test_the_summary_and_the_markdown_show_each_gain() -> None:
    gains = gains_over_others(
        {"best": [1, 1, 0, 1], "empty": [0, 1, 0, 0], "step_by_step": [1, 1, 0, 1]}, n_boot=200
    )
    report = {"instruction": "x", "test": {}, "gains": gains}
    lines = [line for line in summary(report) if line.startswith("best vs ")]
    assert [line.split(":")[0] for line in lines] == ["best vs empty", "best vs step_by_step"]
    assert "+50.0 points" in lines[0] and "+0.0 points" in lines[1]
    assert lines[1].endswith(": the same on every example")
    assert gains_section(report)[:2] == [f"- {line}" for line in lines] and gains_section(report)[-1] == ""
    assert gains_section({"test": {}}) == []  # a report from before gains were recorded
