"""`promptopt opro run --proposer reflective|opro --budget-metric-calls N --minibatch-size N --demos K`
and `opro report` on a reflective run, end to end in-process with fake models."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from promptopt.runs import read_journal
from tests.unit.cli_helpers import run_cli


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("PROMPTOPT_CACHE_DIR", str(tmp_path / "cache"))
    logger = logging.getLogger("promptopt")
    saved = (list(logger.handlers), logger.propagate, logger.level)
    yield
    logger.handlers[:] = saved[0]
    logger.propagate, logger.level = saved[1], saved[2]


def one_error_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("promptopt: error:")
    return lines[0]


def base(tmp_path: Path, run_dir: Path, optimizer: str = "fake:```Add the two numbers.```") -> list[str]:
    data = tmp_path / "add.jsonl"
    data.write_text(
        "".join(json.dumps({"input": f"What is {i} + {i}?", "target": 2 * i}) + "\n" for i in range(30))
    )
    return ["opro", "run", "--task", "instructions", "--dataset", f"jsonl:{data}", "--train", "10", "--val", "5",
            "--test", "5", "--scorer-model", "fake:The answer is 4.", "--optimizer-model", optimizer,
            "--run-dir", str(run_dir), "--seed", "0"]  # fmt: skip


def records(run_dir: Path, event: str) -> list[dict[str, Any]]:
    return [r for r in read_journal(run_dir / "journal.jsonl") if r["event"] == event]


def test_a_reflective_run_records_its_settings_and_stops_on_its_metric_calls(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rd = tmp_path / "r"
    args = [
        *base(tmp_path, rd),
        "--proposer",
        "reflective",
        "--minibatch-size",
        "2",
        "--budget-metric-calls",
        "30",
    ]
    code, out, err = run_cli(capsys, *args, "--steps", "50")
    assert code == 0, err
    assert "projected (reflective): at most" in err and "capped at 30 by --budget-metric-calls" in err
    assert "stopped: metric_calls" in out and "metric calls: " in out and "of at most 30" in out
    cfg = json.loads((rd / "config.json").read_text())
    assert cfg["kind"] == "opro" and cfg["opro"]["proposer"] == "reflective"
    assert cfg["opro"]["minibatch_size"] == 2 and cfg["opro"]["max_metric_calls"] == 30
    result = json.loads((rd / "result.json").read_text())
    assert result["stop_reason"] == "metric_calls" and result["report"]["metric_calls"]["used"] <= 30
    # the scorer always answers 4: the child is never better than its parent on a minibatch
    children = [r["trial"] for r in records(rd, "trial") if r["trial"]["step"] > 0]
    assert children and all(
        t["status"] == "rejected" and t["text"] == "Add the two numbers." for t in children
    )
    assert all(len(r["minibatch"]) == 2 for r in records(rd, "step_started") if r["step"] > 0)

    code, out, err = run_cli(capsys, "opro", "report", str(rd))
    assert code == 0, err
    md = (rd / "report.md").read_text()
    assert "proposer=reflective" in md and "## Reflective iterations" in md and "rejected" in md


def test_resume_keeps_the_proposer_and_minibatch_and_may_raise_the_metric_calls(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rd = tmp_path / "r"
    args = [*base(tmp_path, rd), "--proposer", "reflective", "--budget-metric-calls", "20"]
    assert run_cli(capsys, *args, "--steps", "30")[0] == 0
    used = json.loads((rd / "result.json").read_text())["report"]["metric_calls"]["used"]
    resume = ["opro", "run", "--resume", "--run-dir", str(rd)]
    code, _, err = run_cli(capsys, *resume, "--proposer", "opro")
    assert code == 2 and "proposer 'opro' differs from the run's 'reflective'" in one_error_line(err)
    code, _, err = run_cli(capsys, *resume, "--minibatch-size", "5")
    assert code == 2 and "minibatch_size 5 differs from the run's 3" in one_error_line(err)
    code, out, err = run_cli(capsys, *resume, "--proposer", "reflective", "--minibatch-size", "3",
                         "--budget-metric-calls", "40")  # fmt: skip
    assert code == 0, err
    assert "resuming" in err and "of at most 40" in out
    after = json.loads((rd / "result.json").read_text())["report"]["metric_calls"]
    assert after["max"] == 40 and used < after["used"] <= 40
    assert json.loads((rd / "config.json").read_text())["opro"]["max_metric_calls"] == 20  # as started


def test_opro_with_a_metric_call_budget(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rd = tmp_path / "r"
    # 10 training examples: the start costs 10 and a step of 2 proposals up to 20, so one step fits in 30;
    # it spends 10 (its second proposal is a duplicate), and the next one could cross 30
    code, out, err = run_cli(capsys, *base(tmp_path, rd, "fake:<INS>Add the two numbers.</INS>"), "--proposer", "opro",
                         "--per-step", "2", "--steps", "9", "--budget-metric-calls", "30")  # fmt: skip
    assert code == 0, err
    assert "stopped: metric_calls" in out and "after 1 steps" in out
    result = json.loads((rd / "result.json").read_text())
    assert result["report"]["metric_calls"] == {"used": 20, "max": 30}
    cfg = json.loads((rd / "config.json").read_text())
    assert cfg["opro"]["proposer"] == "opro" and cfg["opro"]["max_metric_calls"] == 30


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--proposer", "gepa"], "unknown proposer 'gepa'; choose one of: opro"),
        (["--minibatch-size", "2"], "minibatch_size applies to the reflective proposer only"),
        (
            ["--proposer", "reflective", "--per-step", "4"],
            "per_step does not apply to the reflective proposer",
        ),
        (
            ["--proposer", "reflective", "--minibatch-size", "0"],
            "--minibatch-size must be a positive integer",
        ),
        (["--budget-metric-calls", "0"], "--budget-metric-calls must be a positive integer"),
        (["--budget-metric-calls", "9"], "max_metric_calls 9 is less than the 10 metric calls"),
        (["--proposer", "reflective", "--val", "0"], "validation split"),
        (["--demos", "0"], "--demos must be a positive integer"),
    ],
)
def test_bad_flags_are_one_line_before_anything_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], needle: str
) -> None:
    rd = tmp_path / "r"
    code, _, err = run_cli(capsys, *base(tmp_path, rd), *extra)
    assert code == 2 and needle in one_error_line(err)
    assert not (rd / "journal.jsonl").exists()


def test_reflective_on_a_task_without_examples_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(capsys, "opro", "run", "--task", "tsp", "--n", "5", "--optimizer-model", "fake:x",
                       "--proposer", "reflective", "--run-dir", str(tmp_path / "t"))  # fmt: skip
    assert code == 2 and "needs per-example evaluations" in one_error_line(err)


def test_demos_is_recorded_in_the_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rd = tmp_path / "r"
    code, _, err = run_cli(capsys, *base(tmp_path, rd, "fake:<INS>Add.</INS>"), "--steps", "1", "--per-step", "1",
                       "--demos", "2")  # fmt: skip
    assert code == 0, err
    assert json.loads((rd / "config.json").read_text())["opro"]["demos"] == 2
    code, _, err = run_cli(capsys, "opro", "run", "--resume", "--run-dir", str(rd), "--demos", "3")
    assert code == 2 and "demos 3 differs from the run's 2" in one_error_line(err)


def test_a_config_file_names_the_proposer(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    conf = tmp_path / "c.json"
    conf.write_text(
        json.dumps({"proposer": "reflective", "minibatch_size": 2, "budget_metric_calls": 60, "steps": 2})
    )
    rd = tmp_path / "r"
    code, _, err = run_cli(capsys, *base(tmp_path, rd), "--config", str(conf))
    assert code == 0, err
    p = json.loads((rd / "config.json").read_text())["opro"]
    assert (p["proposer"], p["minibatch_size"], p["max_metric_calls"], p["steps"]) == ("reflective", 2, 60, 2)
