"""`promptopt opro run|report` and `promptopt tasks list`, in-process with the fake backend."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from promptopt.runs import read_journal
from tests.unit.cli_helpers import run_cli


@pytest.fixture(autouse=True)
def _cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROMPTOPT_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """``main`` configures the ``promptopt`` logger for a console process (handler, no
    propagation); running it in-process must not leak that into later tests' ``caplog``."""
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


def test_linear_regression_run_prints_result_and_run_dir(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rd = tmp_path / "lr"
    code, out, err = run_cli(
        capsys, "opro", "run", "--task", "linear-regression", "--optimizer-model", "fake:I pick [15, 14]",
        "--steps", "3", "--per-step", "2", "--run-dir", str(rd), "--seed", "0",
    )  # fmt: skip
    assert code == 0, err
    assert "projected:" in err
    assert "stopped: optimum" in out
    assert "best pair: [15, 14]" in out
    assert f"run directory: {rd}" in out
    cfg = json.loads((rd / "config.json").read_text())
    assert cfg["task"] == "linear-regression" and cfg["seed"] == 0
    assert cfg["optimizer_model"] == "fake:I pick [15, 14]"
    assert cfg["opro"]["per_step"] == 2 and cfg["opro"]["top_k"] == 20
    assert cfg["task_config"]["w_true"] == 15.0
    assert json.loads((rd / "result.json").read_text())["stop_reason"] == "optimum"


def test_tsp_run_prints_tour_gap_and_baselines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(
        capsys, "opro", "run", "--task", "tsp", "--n", "8", "--optimizer-model", "fake:<trace>0,1,2,3,4,5,6,7</trace>",
        "--steps", "2", "--per-step", "2", "--run-dir", str(tmp_path / "t"),
    )  # fmt: skip
    assert code == 0, err
    assert "tour: 0,1,2,3,4,5,6,7" in out
    assert "gap to optimum:" in out and "optimum (held-karp):" in out
    for name in ("nearest_neighbour", "farthest_insertion", "two_opt"):
        assert f"baseline {name}:" in out


def test_resume_needs_no_other_flag_and_extends(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rd = tmp_path / "t"
    base = [
        "opro",
        "run",
        "--task",
        "tsp",
        "--task-option",
        "n=6",
        "--optimizer-model",
        "fake:<trace>0,2,1,3,4,5</trace>",
    ]
    code, _, err = run_cli(capsys, *base, "--steps", "1", "--per-step", "2", "--run-dir", str(rd))
    assert code == 0, err
    code, out, err = run_cli(capsys, "opro", "run", "--resume", "--run-dir", str(rd), "--steps", "3")
    assert code == 0, err
    assert "resuming" in err and "after 3 steps" in out
    steps = [r["step"] for r in read_journal(rd / "journal.jsonl") if r["event"] == "step_done"]
    assert steps == [0, 1, 2, 3]
    code, _, err = run_cli(
        capsys, "opro", "run", "--resume", "--run-dir", str(rd), "--task", "linear-regression"
    )
    assert code == 2 and "differs" in one_error_line(err)


def test_existing_run_dir_is_refused_without_resume(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["opro", "run", "--task", "tsp", "--n", "5", "--optimizer-model", "fake:x", "--steps", "1",
            "--per-step", "1", "--run-dir", str(tmp_path)]  # fmt: skip
    assert run_cli(capsys, *args)[0] == 0
    code, _, err = run_cli(capsys, *args)
    assert code == 2 and "--resume" in one_error_line(err)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--task", "nope"], "unknown task"),
        (["--task", "tsp", "--w-true", "3"], "has no option(s) w_true"),
        (["--task", "tsp", "--task-option", "bogus=1"], "has no option(s) bogus"),
        (["--task", "tsp", "--task-option", "n=ten"], "not a valid int"),
        (["--task", "tsp", "--task-option", "n"], "KEY=VALUE"),
        (["--task", "tsp", "--n", "1"], "n must be between"),
        (["--task", "tsp", "--scorer-model", "fake:"], "does not use a scorer"),
        (["--task", "tsp", "--steps", "0"], "positive"),
        (["--resume"], "nothing to resume"),
        ([], "--task is required"),
    ],
)
def test_bad_input_is_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], needle: str
) -> None:
    code, _, err = run_cli(
        capsys, "opro", "run", "--optimizer-model", "fake:x", "--run-dir", str(tmp_path / "r"), *args
    )
    assert code == 2
    assert needle in one_error_line(err)


def test_config_file_supplies_options_and_flags_win(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conf = tmp_path / "c.json"
    conf.write_text(json.dumps({"task": "tsp", "task_options": {"n": 5}, "steps": 4, "per_step": 1,
                                "optimizer_model": "fake:x"}))  # fmt: skip
    rd = tmp_path / "r"
    code, out, err = run_cli(
        capsys, "opro", "run", "--config", str(conf), "--steps", "2", "--run-dir", str(rd)
    )
    assert code == 0, err
    cfg = json.loads((rd / "config.json").read_text())
    assert cfg["task_config"]["n"] == 5 and cfg["opro"]["steps"] == 2 and cfg["opro"]["per_step"] == 1


def test_budget_stops_cleanly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(
        capsys, "opro", "run", "--task", "tsp", "--optimizer-model", "fake:x", "--steps", "10",
        "--n", "9", "--per-step", "2", "--budget-calls", "3", "--run-dir", str(tmp_path / "b"),
    )  # fmt: skip
    assert code == 0, err
    assert "stopped: budget" in out
    assert json.loads((tmp_path / "b" / "result.json").read_text())["stop_reason"] == "budget"


def test_report_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rd = tmp_path / "t"
    run_cli(capsys, "opro", "run", "--task", "tsp", "--n", "6", "--optimizer-model", "fake:<trace>0,2,1,3,4,5</trace>",
        "--steps", "1", "--per-step", "1", "--run-dir", str(rd))  # fmt: skip
    code, out, err = run_cli(capsys, "opro", "report", str(rd))
    assert code == 0, err
    assert str(rd / "report.md") in out and (rd / "tsp_tour.png").exists()
    code, _, err = run_cli(capsys, "opro", "report", str(tmp_path / "missing"))
    assert code == 2 and "not a run directory" in one_error_line(err)


def test_tasks_list_shows_tasks_and_options(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "tasks", "list")
    assert code == 0, err
    for text in ("linear-regression", "tsp", "instructions", "w_true=15.0", "n=10"):
        assert text in out


def test_resume_requires_run_dir(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "opro", "run", "--resume")
    assert code == 2 and "--run-dir" in one_error_line(err)


def test_cli_started_run_continues_from_python_with_its_task_options_and_budget(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 9 item 1: ``OPRO().optimize(..., resume=True)`` continues a CLI-started run with the
    run's task options (w_true 9, not the default 15) and budget limit (7 calls)."""
    from promptopt import OPRO

    args = ["opro", "run", "--task", "linear-regression", "--w-true", "9", "--task-option", "num_starting=3",
            "--optimizer-model", "fake:I pick [3, 4]", "--steps", "6", "--per-step", "2",
            "--budget-calls", "7", "--seed", "4"]  # fmt: skip
    monkeypatch.setenv("PROMPTOPT_CACHE_DIR", str(tmp_path / "cache-ref"))
    code, out, err = run_cli(capsys, *args, "--run-dir", str(tmp_path / "ref"))
    assert code == 0, err
    ref = json.loads((tmp_path / "ref" / "result.json").read_text())
    assert ref["stop_reason"] == "budget" and ref["steps"] == 3  # the budget binds before 6 steps

    rd = tmp_path / "cut"
    rd.mkdir()
    (rd / "STOP").touch()  # stops the CLI run after its starting solutions
    monkeypatch.setenv("PROMPTOPT_CACHE_DIR", str(tmp_path / "cache-cut"))
    code, out, err = run_cli(capsys, *args, "--run-dir", str(rd))
    assert code == 0 and "stopped: stop_file" in out, err

    result = OPRO().optimize(run=rd, resume=True)  # task, model, options and limits from the run
    assert (result.stop_reason, result.steps, result.best) == ("budget", 3, ref["best"])
    assert result.usage["calls"] == ref["usage"]["calls"] == 7
    again = json.loads((rd / "result.json").read_text())
    assert again["report"] == ref["report"] and again["best_score"] == ref["best_score"]
    assert history_of(rd) == history_of(tmp_path / "ref")
    # a task name is rebuilt with the run's options, not the task's defaults
    from promptopt.llm.budget import Budget

    more = OPRO(steps=4).optimize(
        "linear-regression", llm="fake:I pick [3, 4]", run=rd, resume=True, budget=Budget(max_calls=100)
    )
    assert more.report["task"]["w_true"] == 9.0 and more.steps == 4


def history_of(run_dir: Path) -> list:
    from promptopt.optimizers.opro.history import history_from_records

    return history_from_records(read_journal(run_dir / "journal.jsonl"))


def test_resume_refuses_a_different_seed_or_optimizer(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rd = tmp_path / "r"
    code, _, err = run_cli(capsys, "opro", "run", "--task", "tsp", "--n", "5", "--optimizer-model", "fake:x",
                       "--steps", "1", "--per-step", "1", "--run-dir", str(rd), "--seed", "2")  # fmt: skip
    assert code == 0, err
    for flag, value in (("--seed", "3"), ("--optimizer-model", "fake:y"), ("--per-step", "4")):
        code, _, err = run_cli(capsys, "opro", "run", "--resume", "--run-dir", str(rd), flag, value)
        assert code == 2 and "differs" in one_error_line(err)
