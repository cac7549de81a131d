"""A prompts-only file searched end to end with a judge, on a real local model (SmolLM2-135M as
target, judge and optimizer): the contract, not what a 135M model knows.

Real requests go out for every stage (proposals, target answers, rubric judgements with the
constrained follow-up when the judge forgets its score line), the run finishes with a held-out
score for the reported instruction and the no-instruction baseline, the answers and the judge's
feedback are kept in ``answers.jsonl``, and ``opro report`` writes the failures section.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from promptopt.cli import main
from promptopt.tasks.instructions.answer_log import ANSWERS_FILE, load_answers

pytestmark = pytest.mark.integration

MODEL = "local:smollm2-135m"


def test_prompts_only_rubric_search_on_a_real_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PROMPTOPT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("PROMPTOPT_THREADS", "1")
    data = tmp_path / "prompts.jsonl"
    prompts = ["Name a colour.", "Say hello in French.", "Name a fruit.", "Count to three.", "Name a pet."]
    data.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in prompts))
    rd = tmp_path / "run"
    main(["opro", "run", "--task", "instructions", "--dataset", str(data), "--judge", "rubric",
          "--scorer-model", MODEL, "--optimizer-model", MODEL, "--train", "2", "--val", "1", "--test", "2",
          "--steps", "1", "--per-step", "1", "--scorer-max-tokens", "24", "--initial", "",
          "--max-tokens", "48", "--task-option", "judge_max_tokens=96", "--run-dir", str(rd)])  # fmt: skip
    out = capsys.readouterr().out
    result = json.loads((rd / "result.json").read_text())
    report = result["report"]["task"]
    assert report["metric"] == "judge:rubric" and result["stop_reason"] == "steps"
    for name in ("best", "empty"):
        row = report["test"][name]
        assert row["total"] == 2 and row["failed"] == 0 and 0.0 <= row["accuracy"] <= 100.0
    assert "held-out test score, best:" in out
    log = load_answers(rd / ANSWERS_FILE)
    test_answers = log.of("test", "")
    assert len(test_answers) == 2
    assert all(str(a["feedback"]).startswith("rubric") for a in test_answers.values())
    main(["opro", "report", str(rd)])
    assert (rd / "report.md").exists()
