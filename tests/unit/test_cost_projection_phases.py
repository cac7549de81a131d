"""The cost projection counts the answer-extraction turns (``--extract-answer``) and the demo phase
(``--demos K``): before a run, the budget checks and the printed estimate must bound what the run
really asks, and name each part."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from promptopt import OPRO
from promptopt.llm.budget import project_items, request_prompt_tokens
from promptopt.llm.fake import FakeLLM
from promptopt.tasks.instructions import costs
from promptopt.tasks.instructions.task import InstructionTask
from tests.unit.cli_helpers import run_cli
from tests.unit.demo_fakes import answer, make_task, proposer, write_data


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("PROMPTOPT_CACHE_DIR", str(tmp_path / "cache"))
    yield


def _run(tmp_path: Path, steps: int = 2, **opro: Any) -> tuple[InstructionTask, FakeLLM, int]:
    """A short run (16 train / 8 validation / 56 test) on a scorer that records its requests;
    with the number of candidates it planned (initial + steps × per_step)."""
    options = opro.pop("task", {})
    scorer = FakeLLM(fn=answer, name="scorer")
    task = make_task(write_data(tmp_path / "add.jsonl"), scorer=scorer, **options)
    planned = len(task.initial) + steps
    OPRO(steps=steps, per_step=1, seed=0, **opro).optimize(task, llm=proposer())
    return task, scorer, planned


def _calls(items: list[costs.CostItem], model: str = "scorer") -> int:
    return sum(n for m, _, n in items if m == model)


def _prompt_tokens(items: list[costs.CostItem], model: str = "scorer") -> int:
    return sum(n * request_prompt_tokens(req) for m, req, n in items if m == model)


def _assert_bounds(items: list[costs.CostItem], scorer: FakeLLM) -> None:
    """The projection bounds the scorer's real requests, in number and in prompt tokens."""
    made = list(scorer.calls)
    assert _calls(items) >= len(made) > 0
    assert _prompt_tokens(items) >= sum(request_prompt_tokens(r) for r in made)


# --------------------------------------------------------------------------- extraction


@pytest.mark.parametrize("mode", ["always", "undecided"])
def test_extraction_turns_are_projected_per_answer_as_their_own_part(tmp_path: Path, mode: str) -> None:
    task, scorer, planned = _run(tmp_path, task={"extract_answer": mode})
    items = task.cost_projection(planned)
    _assert_bounds(items, scorer)
    train = len(task.splits.train)
    turns = task.cost_projection(planned, part="extraction")
    # undecided: whether the rules read an answer is known only after it: one turn each, a bound
    assert _calls(turns) == planned * train
    assert all(
        req.max_tokens == 32 and "Therefore, the answer" in req.messages[-1].content for _, req, _ in turns
    )
    final = task.cost_projection(planned, part="final")
    plain = make_task(tmp_path / "add.jsonl").cost_projection(planned, part="final")
    assert _calls(final) > _calls(plain)  # the final report's answers get their turns too
    assert sum(_calls(task.cost_projection(planned, part=p)) for p in task.cost_parts) == _calls(items)


def test_never_extracts_nothing(tmp_path: Path) -> None:
    task = make_task(write_data(tmp_path / "add.jsonl"))
    assert task.cost_projection(5, part="extraction") == []


# --------------------------------------------------------------------------- the demo phase


def test_the_demo_phase_is_projected_with_its_longer_prompts(tmp_path: Path) -> None:
    task, scorer, planned = _run(tmp_path, demos=2)
    items = task.cost_projection(planned, demos=2)
    _assert_bounds(items, scorer)
    assert _calls(task.cost_projection(planned)) < len(scorer.calls)  # without the phase: too few
    phase = task.cost_projection(planned, part="demos", demos=2)
    assert phase and task.cost_projection(planned, part="demos") == []  # only with --demos
    # the demos are in the prompt: the phase's longest request is longer than any search request
    longest = max(request_prompt_tokens(req) for _, req, _ in phase)
    searched = max(request_prompt_tokens(req) for _, req, _ in task.cost_projection(planned, part="scorer"))
    assert longest > searched
    assert max(len(req.messages or ()) for _, req, _ in phase) == 1 + 2 * 2  # two demo turns, the question
    # uncapped: bootstrap (16) + default pair (8) + 20 trials × 8 + 4 full validations × 8
    assert _calls(phase) == 16 + 8 + 20 * 8 + 4 * 8
    # the final report validates and tests the pick with its demos
    final = task.cost_projection(planned, part="final", demos=2)
    assert max(request_prompt_tokens(req) for _, req, _ in final) == longest


def test_a_metric_call_limit_caps_the_demo_phase_and_still_bounds_it(tmp_path: Path) -> None:
    task, scorer, planned = _run(tmp_path, demos=2, max_metric_calls=150)
    capped = task.cost_projection(planned, part="demos", demos=2, max_metric_calls=150)
    uncapped = task.cost_projection(planned, part="demos", demos=2)
    assert _calls(capped) < _calls(uncapped)
    _assert_bounds(task.cost_projection(planned, demos=2, max_metric_calls=150), scorer)
    # a limit below the bootstrap and the default pair: the search refuses before asking anything
    assert task.cost_projection(planned, part="demos", demos=2, max_metric_calls=20) == []


def test_unknown_parts_are_refused_with_the_list(tmp_path: Path) -> None:
    task = make_task(write_data(tmp_path / "add.jsonl"))
    assert task.cost_parts == costs.PARTS == ("scorer", "judge", "extraction", "demos", "final")
    with pytest.raises(ValueError, match="scorer, judge, extraction, demos, final"):
        task.cost_projection(3, part="optimizer")


# --------------------------------------------------------------------------- the CLI line


def test_the_cli_projection_names_the_extraction_and_demo_parts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "add.jsonl"
    data.write_text(
        "".join(json.dumps({"input": f"What is {i} + {i}?", "target": 2 * i}) + "\n" for i in range(30))
    )
    args = ["opro", "run", "--task", "instructions", "--dataset", f"jsonl:{data}",
            "--optimizer-model", "fake:<INS>Add carefully.</INS>", "--scorer-model", "fake:The answer is 4.",
            "--train", "6", "--val", "4", "--test", "5", "--steps", "1", "--per-step", "1",
            "--extract-answer", "always", "--demos", "2", "--run-dir", str(tmp_path / "run")]  # fmt: skip
    code, _, err = run_cli(capsys, *args)
    assert code == 0, err
    line = " ".join(err.split()).split("projected: ", 1)[1]  # the console may wrap it
    parts = dict(re.findall(r"(\w+) ([\d,]+)", line.split("calls (", 1)[1].split(")", 1)[0]))
    assert {"optimizer", "scorer", "extraction", "demos", "final"} <= set(parts)
    total = int(re.search(r"≤ ([\d,]+) calls", line).group(1).replace(",", ""))  # type: ignore[union-attr]
    usage = json.loads((tmp_path / "run" / "result.json").read_text())["usage"]
    assert 0 < usage["calls"] <= total


def test_projected_items_price_like_any_other(tmp_path: Path) -> None:
    task = make_task(write_data(tmp_path / "add.jsonl"), extract_answer="always")
    proj = project_items(task.cost_projection(3, demos=2))
    assert proj.calls == sum(n for _, _, n in task.cost_projection(3, demos=2)) > 0
