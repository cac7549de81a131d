"""The answer-extraction turn (issue 23, item 9): Kojima et al.'s "Therefore, the answer is" on the
scorer, for the answers the rules cannot read (``undecided``) or all of them (``always``)."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from promptopt.errors import ConfigError
from promptopt.evaluators.answers.extraction import (
    ExtractionMetric,
    answer_trigger,
    check_extract_mode,
    extraction_prompt,
)
from promptopt.evaluators.metrics.base import MetricItem, Score
from promptopt.llm.base import (
    BudgetExceededError,
    LLMBadRequestError,
    LLMOutageError,
    LLMServerError,
    Request,
)
from promptopt.llm.budget import Budget
from promptopt.llm.factory import build_llm
from promptopt.llm.fake import FakeLLM, request_text
from promptopt.tasks.base import Candidate
from promptopt.tasks.instructions.datasets import Example
from promptopt.tasks.instructions.task import create
from promptopt.testing import write_jsonl

EGGS = Example("gsm:0", "Janet has 9 eggs and sells them at $2 each. How much does she make?", "18", "number")
NAV = Example(
    "nav:0", "Take 1 step. Take 1 step back. Do you return to the starting point?", "Yes", "boolean"
)
SHAPES = Example(
    "shape:0",
    "This SVG path draws a\nOptions:\n(A) circle\n(B) line\n(C) triangle",
    "(C)",
    "choice",
    (("A", "circle"), ("B", "line"), ("C", "triangle")),
    ("C",),
)
TRIGGER = r"Therefore, (?:among \w through \w, )?the answer"


def _extracting(continuation: str) -> FakeLLM:
    """A scorer that continues every extraction turn with ``continuation`` (and fails the test
    on any other request)."""
    return FakeLLM(rules=[(TRIGGER, continuation)], default=AssertionError("not an extraction turn"))


def _score(metric: ExtractionMetric, *items: tuple[Example, str]) -> list[Score]:
    return asyncio.run(metric.ascore([MetricItem(ex, answer) for ex, answer in items]))


# --------------------------------------------------------------------------- the turn itself


def test_triggers_follow_kojima_per_answer_kind() -> None:
    assert answer_trigger("number") == "Therefore, the answer (arabic numerals) is"
    assert answer_trigger("choice", options=SHAPES.options) == "Therefore, among A through C, the answer is"
    assert answer_trigger("boolean", "Yes") == "Therefore, the answer (Yes or No) is"
    assert answer_trigger("boolean", "no") == "Therefore, the answer (Yes or No) is"  # no gold leaks
    assert answer_trigger("boolean", "invalid") == "Therefore, the answer (valid or invalid) is"
    assert answer_trigger("text") == "Therefore, the answer is"


def test_the_prompt_holds_question_and_answer_never_the_instruction() -> None:
    llm = _extracting("18.")
    _score(ExtractionMetric(llm, "undecided"), (EGGS, "She makes 9 * 2."))
    (call,) = llm.calls
    assert call.temperature == 0.0 and call.seed == 0 and call.max_tokens == 32
    assert request_text(call) == extraction_prompt(EGGS.input, "She makes 9 * 2.", "number")
    assert request_text(call) == (
        f"Q: {EGGS.input}\nA: She makes 9 * 2.\nTherefore, the answer (arabic numerals) is"
    )


def test_undecided_asks_only_for_answers_the_rules_cannot_read() -> None:
    llm = _extracting(" 18 dollars.")
    scores = _score(
        ExtractionMetric(llm, "undecided"),
        (EGGS, "The answer is 9 * 2."),  # an expression with no value: undecided
        (EGGS, "The answer is 18."),  # decided right: no turn
        (EGGS, "The answer is 20."),  # decided wrong: no turn
        (EGGS, "18 or 20"),  # a hedge is decided: no turn
    )
    assert [s.value for s in scores] == [1.0, 1.0, 0.0, 0.0]
    assert len(llm.calls) == 1 and "9 * 2" in request_text(llm.calls[0])
    assert "answer-extraction turn" in (scores[0].feedback or "") and scores[0].prediction == "18"
    assert "extraction" not in (scores[1].feedback or "")


def test_always_asks_for_every_answer_and_the_turn_decides() -> None:
    llm = _extracting("20.")
    scores = _score(ExtractionMetric(llm, "always"), (EGGS, "The answer is 18."), (EGGS, "The answer is 20."))
    assert len(llm.calls) == 2
    assert [s.value for s in scores] == [0.0, 0.0]  # the scorer, asked again, said 20 both times


def test_never_is_the_rules_alone() -> None:
    llm = _extracting("18.")
    scores = _score(ExtractionMetric(llm, "never"), (EGGS, "The answer is 9 * 2."), (EGGS, "18"))
    assert llm.calls == [] and [s.value for s in scores] == [0.0, 1.0]
    assert "could not settle" in (scores[0].feedback or "")


def test_an_unreadable_continuation_leaves_the_rules_reading() -> None:
    llm = _extracting("something else entirely")
    for mode, answer, value in (
        ("undecided", "The answer is 9 * 2.", 0.0),
        ("always", "The answer is 18.", 1.0),
    ):
        (score,) = _score(ExtractionMetric(llm, mode), (EGGS, answer))
        assert score.value == value and "could not be read either" in (score.feedback or "")


@pytest.mark.parametrize(
    ("example", "answer", "continuation"),
    [
        (NAV, "You take one step and then one step back, ending where you began.", "Yes."),
        (SHAPES, "The path closes after three segments.", "(C)."),
        (SHAPES, "The path closes after three segments.", "C"),
        (
            Example("dyck:0", "Close: ( [", "] )", "text"),
            "Close the square bracket, then the round one.",
            "] )",
        ),
    ],
)
def test_every_answer_kind_reads_its_continuation(example: Example, answer: str, continuation: str) -> None:
    llm = _extracting(continuation)
    (score,) = _score(ExtractionMetric(llm, "undecided"), (example, answer))
    assert score.value == 1.0 and len(llm.calls) == 1


def test_a_forced_kind_grades_as_that_kind() -> None:
    llm = _extracting("18")
    (score,) = _score(ExtractionMetric(llm, "undecided", kind="number"), (EGGS, "nothing here"))
    assert score.value == 1.0 and ExtractionMetric(llm, "always", kind="text").name == "text+extract:always"


def test_the_turn_is_charged_to_the_scorers_budget(tmp_path: Path) -> None:
    budget = Budget(max_calls=1)
    llm = build_llm(_extracting("18."), budget=budget, cache=tmp_path / "cache.sqlite")
    metric = ExtractionMetric(llm, "undecided")
    assert _score(metric, (EGGS, "The answer is 9 * 2."))[0].value == 1.0
    assert budget.calls == 1
    again = _score(metric, (EGGS, "The answer is 9 * 2."))  # cached: costs nothing
    assert again[0].value == 1.0 and budget.calls == 1
    with pytest.raises(BudgetExceededError):  # a refusal aborts the step, never a score
        _score(metric, (EGGS, "The answer is 8 + 10."))


def test_a_rejected_turn_leaves_the_rules_reading_and_an_outage_aborts() -> None:
    rejecting = FakeLLM(default=LLMBadRequestError("prompt too long"))
    (score,) = _score(ExtractionMetric(rejecting, "undecided"), (EGGS, "The answer is 9 * 2."))
    assert score.value == 0.0 and score.error is None and "was rejected" in (score.feedback or "")
    down = FakeLLM(default=LLMServerError("503"))
    with pytest.raises(LLMOutageError):
        _score(ExtractionMetric(down, "undecided"), (EGGS, "The answer is 9 * 2."), (EGGS, "18"))


def test_modes_are_checked() -> None:
    assert check_extract_mode("always") == "always"
    with pytest.raises(ConfigError, match="never, undecided, always"):
        check_extract_mode("sometimes")
    with pytest.raises(ConfigError):
        ExtractionMetric(FakeLLM(), "undecided", kind="colour")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- on the task


def _data(tmp_path: Path) -> Path:
    path = tmp_path / "eggs.jsonl"
    write_jsonl(
        path,
        [{"input": f"Janet sells {i} eggs at $2 each. How much?", "target": 2 * i} for i in range(1, 21)],
    )
    return path


def _scorer() -> FakeLLM:
    """Answers every question with an expression (undecided by the rules); states its value when
    asked "Therefore, the answer is"."""

    def reply(request: Request, _: int) -> str:
        text = request_text(request)
        n = int(text.split("Janet sells ")[1].split()[0])
        return f"{2 * n}." if re.search(TRIGGER, text) else f"The answer is {n} * 2."

    return FakeLLM(fn=reply)


@pytest.mark.parametrize(("mode", "accuracy", "extra_calls"), [("never", 0.0, 0), ("undecided", 100.0, 1)])
def test_the_task_option_scores_through_the_turn(
    tmp_path: Path, mode: str, accuracy: float, extra_calls: int
) -> None:
    llm = _scorer()
    task = create(
        dataset=f"jsonl:{_data(tmp_path)}", scorer=llm, extract_answer=mode, train=10, val=5, test=5
    )
    (scored,) = task.score([Candidate("Solve it.", "Solve it.")])
    assert scored.score == accuracy
    assert len(llm.calls) == 10 * (1 + extra_calls)
    assert ("extract_answer" in task.config()) is (mode != "never")  # old runs' config.json unchanged
    assert ("extract_answer" in task.scoring_stats()) is (mode != "never")


def test_the_task_refuses_a_turn_for_a_metric_that_reads_no_answer(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="built-in graders"):
        create(dataset=f"jsonl:{_data(tmp_path)}", scorer=FakeLLM(), extract_answer="always", metric="exact")
    with pytest.raises(ConfigError, match="unknown extract_answer"):
        create(dataset=f"jsonl:{_data(tmp_path)}", scorer=FakeLLM(), extract_answer="yes")
    task = create(
        dataset=f"jsonl:{_data(tmp_path)}", scorer=FakeLLM(), extract_answer="always", metric="number"
    )
    assert task.config()["extract_answer"] == "always"


# --------------------------------------------------------------------------- the CLI flag


@pytest.fixture
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("PROMPTOPT_CACHE_DIR", str(tmp_path / "cache"))
    logger = logging.getLogger("promptopt")
    saved = (list(logger.handlers), logger.propagate, logger.level)
    yield
    logger.handlers[:] = saved[0]
    logger.propagate, logger.level = saved[1], saved[2]


@pytest.mark.usefixtures("_isolated")
@pytest.mark.parametrize("flag", [[], ["--extract-answer", "undecided"]])
def test_opro_run_takes_the_flag(tmp_path: Path, flag: list[str]) -> None:
    from promptopt.cli import main

    rd = tmp_path / "run"
    args = ["opro", "run", "--task", "instructions", "--dataset", f"jsonl:{_data(tmp_path)}",
            "--scorer-model", "fake:The answer is 2 * 2.", "--optimizer-model", "fake:<INS>Add.</INS>",
            "--steps", "1", "--per-step", "1", "--run-dir", str(rd), *flag]  # fmt: skip
    try:
        main(args)
    except SystemExit as exc:
        assert not exc.code
    config = json.loads((rd / "config.json").read_text())
    answers = [json.loads(line) for line in (rd / "answers.jsonl").read_text().splitlines()]
    turns = [
        a for a in answers if a.get("kind") == "answer" and "extraction turn" in (a.get("feedback") or "")
    ]
    if flag:
        assert config["task_config"]["extract_answer"] == "undecided"
        assert turns  # every answer was undecided, so every one got the turn (the fake said the same)
    else:
        assert "extract_answer" not in config["task_config"] and not turns


def test_opro_run_refuses_an_unknown_mode_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], _isolated: None
) -> None:
    from promptopt.cli import main

    args = ["opro", "run", "--task", "instructions", "--dataset", f"jsonl:{_data(tmp_path)}",
            "--scorer-model", "fake:4", "--optimizer-model", "fake:<INS>Add.</INS>", "--steps", "1",
            "--run-dir", str(tmp_path / "run"), "--extract-answer", "sometimes"]  # fmt: skip
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 2
    assert "unknown extract_answer 'sometimes'" in capsys.readouterr().err
