"""The cost projection reaches every place that sizes a run: the final report's budget hold of a
``--demos`` run (its pick is tested with its demos: longer prompts), the reflective proposer's
printed line (extraction turns, demo phase, the final report's real size, the budget check), and
the task's scoring metric through a public accessor."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from promptopt import OPRO
from promptopt.cli.opro import _reflective_projection_line
from promptopt.evaluators.answers.extraction import ExtractionMetric
from promptopt.llm.budget import Budget, project_items
from promptopt.llm.fake import FakeLLM
from tests.unit.demo_fakes import answer, make_task, proposer, write_data


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("PROMPTOPT_CACHE_DIR", str(tmp_path / "cache"))
    yield


# --------------------------------------------------------------------------- the final report's hold


def test_a_demo_runs_final_report_hold_is_projected_with_its_demos(tmp_path: Path) -> None:
    task = make_task(write_data(tmp_path / "add.jsonl"), scorer=FakeLLM(fn=answer, name="scorer"))
    planned = len(task.initial) + 2
    budget = Budget(max_calls=100_000)
    result = OPRO(steps=2, per_step=1, seed=0, demos=2).optimize(task, llm=proposer(), budget=budget)
    hold = result.report["budget"]["final_hold"]
    with_demos = project_items(task.cost_projection(planned, part="final", demos=2))
    without = project_items(task.cost_projection(planned, part="final"))
    assert (hold["calls"], hold["tokens"]) == (with_demos.calls, with_demos.tokens)
    assert with_demos.prompt_tokens > without.prompt_tokens  # what the hold used to miss


# --------------------------------------------------------------------------- the reflective line


def _counts(line: str) -> dict[str, int]:
    """The per-part calls of the reflective line's requests: ``(optimizer 5, scorer 30, ...)``."""
    inner = line.split("as requests, ", 1)[1].split("calls (", 1)[1].split(")", 1)[0]
    return {name: int(n.replace(",", "")) for name, n in re.findall(r"(\w+) ([\d,]+)", inner)}


def test_the_reflective_line_asks_the_task_for_extraction_demos_and_the_final_report(tmp_path: Path) -> None:
    task = make_task(write_data(tmp_path / "add.jsonl"), extract_answer="always")  # 16 / 8 / 56
    p = OPRO(proposer="reflective", minibatch_size=2, steps=3, seed=0, demos=2, max_metric_calls=60).params(
        task
    )
    line = _reflective_projection_line(p, task, FakeLLM(name="optimizer"), Budget())
    parts = _counts(line)
    # the search, in metric calls: 8 per starting instruction, then 3 × (2 × 2 + 8) = 36; capped at 30
    # (the search's share of 60 with --demos): one answer and one extraction turn each
    first = len(task.initial) * 8
    assert "capped at 30 by --budget-metric-calls" in line
    assert parts["optimizer"] == 3 and parts["scorer"] == parts["extraction"] == min(30, first + 36)
    planned = len(task.initial) + 3  # as the final report's hold counts them
    for part in ("demos", "final"):
        projected = task.cost_projection(planned, part=part, demos=2, max_metric_calls=60)
        assert parts[part] == project_items(projected).calls > 0
    assert "budget cannot hold" not in line


def test_the_reflective_line_checks_the_budget_can_hold_the_final_report(tmp_path: Path) -> None:
    task = make_task(write_data(tmp_path / "add.jsonl"))
    p = OPRO(proposer="reflective", steps=2, seed=0).params(task)
    line = _reflective_projection_line(p, task, FakeLLM(name="optimizer"), Budget(max_calls=10))
    assert "the budget cannot hold the final report's projected" in line
    assert (
        _counts(line)["final"]
        == project_items(task.cost_projection(len(task.initial) + 2, part="final")).calls
    )


# --------------------------------------------------------------------------- the scoring metric


def test_the_task_names_its_scoring_metric_and_the_projection_reads_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = write_data(tmp_path / "add.jsonl")
    extracting = make_task(data, extract_answer="always")
    metric = extracting.scoring_metric()
    assert isinstance(metric, ExtractionMetric) and metric.mode == "always"
    assert make_task(data).scoring_metric() is None  # auto, no extraction turn: the grader per example
    assert extracting.cost_projection(3, part="extraction")
    monkeypatch.setattr(extracting, "scoring_metric", lambda: None)  # the accessor is what it reads
    assert extracting.cost_projection(3, part="extraction") == []
