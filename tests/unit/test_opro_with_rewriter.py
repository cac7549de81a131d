"""OPRO and BPO together: an instruction search scored on rewritten questions
(``create(rewriter=...)``, ``opro run --rewriter DIR``), the order ``AlignedLLM`` deploys them in."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from promptopt.aligned import AlignedLLM
from promptopt.errors import ConfigError
from promptopt.llm.base import Request, run_sync
from promptopt.llm.fake import FakeLLM, request_text
from promptopt.tasks.base import Candidate
from promptopt.tasks.instructions.task import create
from tests.unit.cli_helpers import run_cli


class StubRewriter:
    """Rewrites a question by asking for care; records each batch."""

    name = "/models/stub-rewriter"

    def __init__(self) -> None:
        self.batches: list[list[str]] = []

    def rewrite(self, prompts, settings):
        self.batches.append(list(prompts))
        return [f"{p} Check carefully." for p in prompts]


def scorer(request: Request, _i: int) -> str:
    """Right only when the question was rewritten ("carefully") and the instruction says "Sum"."""
    text = request_text(request)
    a = int(re.search(r"What is (\d+) \+", text).group(1))  # type: ignore[union-attr]
    right = "carefully" in text and "Sum" in text
    return f"The answer is {2 * a if right else 2 * a + 1}."


@pytest.fixture
def data_file(tmp_path: Path) -> Path:
    path = tmp_path / "add.jsonl"
    rows = [{"input": f"What is {i} + {i}?", "target": 2 * i} for i in range(20)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_questions_are_rewritten_once_and_the_instruction_goes_around_the_rewrite(data_file: Path) -> None:
    fake, rw = FakeLLM(fn=scorer), StubRewriter()
    task = create(dataset=f"jsonl:{data_file}", scorer=fake, rewriter=rw, position="Q_end")
    assert len(rw.batches) == 1 and len(rw.batches[0]) == 20  # one batch, every question once
    [with_sum, without] = run_sync(
        task.ascore([Candidate("Sum them.", "Sum them."), Candidate("Add.", "Add.")])
    )
    assert with_sum.score == 100.0 and without.score == 0.0
    sent = fake.calls[0].messages[-1].content
    assert re.fullmatch(r"What is \d+ \+ \d+\? Check carefully\.\n\nSum them\.", sent)
    assert task.config()["rewriter"] == "/models/stub-rewriter"
    assert task.splits.recipe["rewriter"] == {"mode": "default", "questions": 20, "changed": 20}
    # deployed: the same rewrite-then-instruct order gives the same prompt
    deployed = FakeLLM(default="ok")
    aligned = AlignedLLM(deployed, rewriter=StubRewriter(), instruction="Sum them.", position="Q_end")
    aligned.generate([Request.chat(task.splits.train[0].input.removesuffix(" Check carefully."))])
    assert deployed.calls[0].messages[-1].content in {
        fake_req.messages[-1].content for fake_req in fake.calls
    }


def test_without_a_rewriter_nothing_changes(data_file: Path) -> None:
    task = create(dataset=f"jsonl:{data_file}", scorer=FakeLLM(fn=scorer))
    assert "rewriter" not in task.config() and "rewriter" not in task.splits.recipe
    [scored] = run_sync(task.ascore([Candidate("Sum them.", "Sum them.")]))
    assert scored.score == 0.0
    with pytest.raises(ConfigError, match="rewrite_mode applies to a rewriter"):
        create(dataset=f"jsonl:{data_file}", scorer=FakeLLM(), rewrite_mode="aggressive")


def test_cli_rewriter_flag_bad_input_is_one_line(
    tmp_path: Path, data_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def run(*args: str) -> tuple[int, str]:
        code, _, err = run_cli(
            capsys, "opro", "run", "--steps", "1", "--per-step", "1", "--run-dir", str(tmp_path / "r"), *args
        )
        return code, err

    code, err = run("--task", "tsp", "--n", "5", "--optimizer-model", "fake:x", "--rewriter", "x")
    assert code == 2 and "no option(s) rewriter" in err and len(err.strip().splitlines()) == 1
    code, err = run(
        "--task", "instructions", "--dataset", f"jsonl:{data_file}", "--scorer-model", "fake:4",
        "--rewriter", str(tmp_path / "no-such-rewriter"),
    )  # fmt: skip
    assert code == 2 and "no-such-rewriter" in err and len(err.strip().splitlines()) == 1
