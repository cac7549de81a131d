"""Demonstrations through the final report and into deployment (issue 20): the test accuracy is the
instruction's *with* its demos, result.json carries them, and ``AlignedLLM`` /
``instruction_from_run`` / ``promptopt serve --instruction-from`` send exactly the prompt scored."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from demo_fakes import CAREFUL, answer, demo_outputs, last_user, make_task, write_data

from promptopt.aligned import AlignedLLM, instruction_from_run
from promptopt.errors import ConfigError, RunDirError
from promptopt.evaluators.accuracy import build_request
from promptopt.llm.base import Message, Request
from promptopt.llm.fake import FakeLLM, request_text
from promptopt.prompting import POSITIONS, Demo
from promptopt.runs import Run
from promptopt.tasks.instructions.report import report_section, summary
from promptopt.tasks.instructions.validation import BASELINES

DEMOS = (Demo("What is 3 + 3?", "6"), Demo("What is 4 + 4?", "Adding 4 and 4 gives 8. The answer is 8."))


def echo() -> FakeLLM:
    return FakeLLM(fn=lambda r, _i: f"<{request_text(r)}>")


# --------------------------------------------------------------------------- AlignedLLM


def test_demo_turns_come_before_the_question_in_order() -> None:
    inner = echo()
    llm = AlignedLLM(inner, instruction="Be exact.", position="Q_begin", system_prompt="SYS", demos=DEMOS)
    llm.generate([Request(messages=(Message("user", "What is 9 + 9?"),), max_tokens=7)])
    (sent,) = inner.calls
    assert sent.messages == (
        Message("system", "SYS"),
        Message("user", "What is 3 + 3?"),
        Message("assistant", "6"),
        Message("user", "What is 4 + 4?"),
        Message("assistant", "Adding 4 and 4 gives 8. The answer is 8."),
        Message("user", "Be exact.\n\nWhat is 9 + 9?"),
    )
    assert sent.max_tokens == 7


@pytest.mark.parametrize("position", POSITIONS)
def test_deployed_exactly_as_scored(position: str) -> None:
    """The request the deployed model gets is the scorer's request for the same question."""

    class Q:
        id, input, target, kind, options, accepted = "q", "What is 9 + 9?", "18", "number", (), ()

    scored = build_request(Q(), "Be exact.", position, system="SYS", demos=DEMOS)
    inner = echo()
    AlignedLLM(inner, instruction="Be exact.", position=position, system_prompt="SYS", demos=DEMOS).generate(
        [Request(messages=(Message("user", Q.input),))]
    )
    assert inner.calls[0].messages == scored.messages


def test_a_plain_prompt_becomes_chat_to_carry_the_demos() -> None:
    inner = echo()
    AlignedLLM(inner, demos=[d.to_json() for d in DEMOS]).generate([Request(prompt="What is 9 + 9?")])
    (sent,) = inner.calls
    assert sent.prompt is None and [m.role for m in sent.messages] == ["user", "assistant"] * 2 + ["user"]
    assert sent.messages[-1] == Message("user", "What is 9 + 9?")


def test_demos_are_checked_and_named() -> None:
    with pytest.raises(ConfigError, match="demonstration must be"):
        AlignedLLM(echo(), demos=[{"input": "q"}])
    with pytest.raises(ConfigError, match="demos must be a list"):
        AlignedLLM(echo(), demos="q -> a")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="needs rewriter=, instruction="):
        AlignedLLM(echo(), demos=[])
    a = AlignedLLM(echo(), instruction="x", demos=DEMOS)
    b = AlignedLLM(echo(), instruction="x", demos=DEMOS[:1])
    assert "demos:2:" in a.name and a.name != b.name != AlignedLLM(echo(), instruction="x").name


# --------------------------------------------------------------------------- final report


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return write_data(tmp_path / "add.jsonl")


async def test_final_report_tests_the_instruction_with_its_demos(data: Path) -> None:
    fake = FakeLLM(fn=answer)
    task = make_task(data, fake)
    labelled = tuple(Demo(ex.input, str(ex.target)) for ex in task.splits.train[:2])
    report = await task.afinal_report(CAREFUL, demos=labelled)
    assert report["instruction"] == CAREFUL and report["demos"] == [d.to_json() for d in labelled]
    assert report["selected_by"] == "validation accuracy with demos"
    assert report["validation"][0]["val_accuracy"] == 100.0 and report["validation"][0]["demos"] == 2
    test = report["test"]
    assert test["best"]["accuracy"] == 100.0 and test["best"]["demos"] == 2  # only with its demos
    assert test["best_without_demos"]["accuracy"] < 100.0 and "demos" not in test["best_without_demos"]
    assert {name for name, _ in BASELINES} <= set(test)
    assert report["best_minus_best_baseline"] == 100.0 - max(test[n]["accuracy"] for n, _ in BASELINES)
    assert len(report["per_example"]["best"]) == len(task.splits.test)
    # demo turns went to the instruction's own requests only: baselines are scored without them
    test_inputs = {ex.input for ex in task.splits.test}
    on_test = [r for r in fake.calls if any(last_user(r).endswith(q) for q in test_inputs)]
    assert len(on_test) == (2 + len(BASELINES)) * len(task.splits.test)  # best, without demos, baselines
    for req in on_test:
        assert bool(demo_outputs(req)) == (last_user(req).startswith(CAREFUL) and _is_best(req, labelled))
    assert sum(bool(demo_outputs(r)) for r in on_test) == len(task.splits.test)
    lines = summary(report)
    assert any(line.startswith("demos: 2 few-shot demonstrations") for line in lines)
    section = "\n".join(report_section(report, {}))
    assert "2 few-shot demonstrations" in section and labelled[0].input in section


def _is_best(request: Request, demos: tuple[Demo, ...]) -> bool:
    return demo_outputs(request) == [d.output for d in demos]


async def test_final_report_without_demos_is_unchanged(data: Path) -> None:
    report = await make_task(data).afinal_report(CAREFUL)
    assert "demos" not in report and "best_without_demos" not in report["test"]
    assert "demos" not in report["test"]["best"]


# --------------------------------------------------------------------------- run files and doors


def _write_run(path: Path, demos: Any, report: dict[str, Any] | None = None) -> None:
    run = Run.create(path, {"task": "instructions", "task_config": {"position": "Q_begin"}, "demos": 2})
    result: dict[str, Any] = {"task": "instructions", "best": CAREFUL, "best_score": 50.0, "demos": demos}
    if report is not None:
        result["report"] = {"task": report}
    run.write_result(result)
    run.close()


async def test_result_json_round_trip_into_the_deployed_prompt(data: Path, tmp_path: Path) -> None:
    task = make_task(data)
    labelled = tuple(Demo(ex.input, str(ex.target)) for ex in task.splits.train[:2])
    report = await task.afinal_report(CAREFUL, demos=labelled)
    _write_run(tmp_path / "run", [d.to_json() for d in labelled], report)
    assert json.loads((tmp_path / "run" / "config.json").read_text())["demos"] == 2
    found = instruction_from_run(tmp_path / "run")
    assert (found.text, found.position, found.demos) == (CAREFUL, "Q_begin", labelled)
    # deployed: the model sees the scorer's request and so answers as it did in the test
    target = FakeLLM(fn=answer)
    llm = AlignedLLM.from_run(target, tmp_path / "run")
    ex = task.splits.test[1]
    out = llm.generate([Request(messages=(Message("user", ex.input),))])
    scored = build_request(ex, CAREFUL, "Q_begin", demos=labelled)
    assert target.calls[0].messages == scored.messages
    assert out[0].text.endswith(f"The answer is {ex.target}.")


def test_a_run_without_demos_deploys_none_and_bad_demos_are_refused(tmp_path: Path) -> None:
    _write_run(tmp_path / "plain", None)
    assert instruction_from_run(tmp_path / "plain").demos == ()
    _write_run(tmp_path / "bad", [{"input": 3}])
    with pytest.raises(RunDirError, match="demonstration must be"):
        instruction_from_run(tmp_path / "bad")
    # the report's demos serve when result.json has no top-level key (an older writer)
    run = Run.create(tmp_path / "old", {"task": "instructions"})
    run.write_result(
        {
            "task": "instructions",
            "best": "b",
            "report": {"task": {"instruction": "I", "demos": [DEMOS[0].to_json()]}},
        }
    )
    run.close()
    assert instruction_from_run(tmp_path / "old").demos == DEMOS[:1]


def test_serve_instruction_from_carries_the_demos(tmp_path: Path) -> None:
    pytest.importorskip("fastapi")
    from promptopt.serve.config import ServeConfig

    _write_run(tmp_path / "run", [d.to_json() for d in DEMOS])
    upstream, served = ServeConfig(target="fake:x", instruction_from=tmp_path / "run").build_upstream()
    assert served.demos == DEMOS and served.text == CAREFUL
    assert isinstance(upstream.shared, AlignedLLM) and upstream.shared.demos == DEMOS
