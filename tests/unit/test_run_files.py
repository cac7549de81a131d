"""An OPRO run directory's files are read the way a database reads its files (issue 23, items 3 and 4):
a config.json missing a block (as an older version wrote) or holding one of the wrong type, a
journal record of the wrong shape, a file from a newer format: each is one ``promptopt: error:`` line
naming the file and the key, exit code 2, and nothing in the run directory changes. A complete file
without a version (the release before versions) is read as format 1 and resumes."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from promptopt.runs import FORMAT_VERSION, read_journal
from tests.unit.cli_helpers import run_cli

LINREG = ["opro", "run", "--task", "linear-regression", "--optimizer-model", "fake:I pick [15, 14]"]


@pytest.fixture(autouse=True)
def _cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROMPTOPT_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    logger = logging.getLogger("promptopt")
    saved = (list(logger.handlers), logger.propagate, logger.level)
    yield
    logger.handlers[:] = saved[0]
    logger.propagate, logger.level = saved[1], saved[2]


def one_error_line(code: int, err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("promptopt: error: "), err
    assert "internal error" not in lines[0], lines[0]
    return lines[0].removeprefix("promptopt: error: ")


def snapshot(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def run_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """A finished linear-regression run of 3 steps of 4 proposals (it stops at the optimum)."""
    rd = tmp_path / "run"
    code, _, err = run_cli(capsys, *LINREG, "--steps", "3", "--per-step", "4", "--run-dir", rd)
    assert code == 0, err
    return rd


def edit_json(path: Path, change: Callable[[dict[str, Any]], object]) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def add_record(rd: Path, record: Any) -> None:
    with open(rd / "journal.jsonl", "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record) + "\n")


# --------------------------------------------------------------------------- config.json


def test_new_runs_write_the_format_version(run_dir: Path) -> None:
    for name in ("config.json", "result.json"):
        assert json.loads((run_dir / name).read_text())["format_version"] == FORMAT_VERSION
    assert read_journal(run_dir / "journal.jsonl")[0] == {
        "event": "run_started",
        "format_version": FORMAT_VERSION,
        "time": pytest.approx(0, abs=1e12),
    }


@pytest.mark.parametrize(
    ("missing", "named"),
    [
        (("opro",), "'opro'"),  # 3 x 4 once resumed as the task's 500 x 8
        (("opro", "steps"), "'opro.steps'"),
        (("opro", "per_step"), "'opro.per_step'"),
        (("task_config",), "'task_config'"),
        (("task",), "'task'"),
        (("optimizer_model",), "'optimizer_model'"),
        (("seed",), "'seed'"),
        (("kind",), "'kind'"),
    ],
)
def test_a_config_missing_a_block_is_refused_naming_it(
    run_dir: Path, capsys: pytest.CaptureFixture[str], missing: tuple[str, ...], named: str
) -> None:
    def drop(cfg: dict[str, Any]) -> None:
        *outer, last = missing
        for key in outer:
            cfg = cfg[key]
        del cfg[last]

    edit_json(run_dir / "config.json", drop)
    before = snapshot(run_dir)
    for argv in (["opro", "run", "--resume", "--run-dir", run_dir], ["opro", "report", run_dir]):
        line = one_error_line(*run_cli(capsys, *argv)[::2])
        assert f"config.json has no {named}; the file was written by an older promptopt" in line, line
        assert snapshot(run_dir) == before


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda c: c.update(opro="fast"), "opro must be a JSON object, got 'fast'"),
        (lambda c: c["opro"].update(steps="abc"), "opro.steps must be an integer, got 'abc'"),
        (lambda c: c["opro"].update(temperature=None), "opro.temperature must be a finite number, got None"),
        (
            lambda c: c["opro"].update(temperature=float("nan")),
            "opro.temperature must be a finite number, got nan",
        ),
        (lambda c: c["budget"].update(max_calls=-5), "budget: max_calls must be >= 0, got -5"),
        (
            lambda c: c["budget"].update(max_dollars=float("inf")),
            "budget.max_dollars must be a finite number",
        ),
        (
            lambda c: c.update(task_config=[1, 2]),
            "task_config must be a JSON object, got a JSON list of length 2",
        ),
        (lambda c: c.update(seed="zero"), "seed must be an integer, got 'zero'"),
        (lambda c: c.update(budget=5), "budget must be a JSON object or null, got 5"),
        (lambda c: c["budget"].update(max_calls="many"), "budget.max_calls must be an integer or null"),
        (lambda c: c.update(direction="up"), "direction must be one of 'min', 'max', got 'up'"),
        (
            lambda c: c.update(optimizer_model=["fake:x"]),
            "optimizer_model must be a string, got a JSON list of length 1",
        ),
    ],
)
def test_a_config_block_of_the_wrong_type_is_one_line(
    run_dir: Path, capsys: pytest.CaptureFixture[str], change: Callable[[dict[str, Any]], object], named: str
) -> None:
    edit_json(run_dir / "config.json", change)
    before = snapshot(run_dir)
    for argv in (["opro", "run", "--resume", "--run-dir", run_dir], ["opro", "report", run_dir]):
        line = one_error_line(*run_cli(capsys, *argv)[::2])
        assert f"config.json: {named}" in line, line
        assert snapshot(run_dir) == before


@pytest.mark.parametrize("content", ["[1, 2]", '"a run"', "null"])
def test_a_config_that_is_no_object_is_one_line(
    run_dir: Path, capsys: pytest.CaptureFixture[str], content: str
) -> None:
    (run_dir / "config.json").write_text(content)
    before = snapshot(run_dir)
    line = one_error_line(*run_cli(capsys, "opro", "run", "--resume", "--run-dir", run_dir)[::2])
    assert "must hold a JSON object" in line
    assert snapshot(run_dir) == before


def test_a_bpo_config_is_not_resumed_as_opro(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    edit_json(run_dir / "config.json", lambda c: c.update(kind="bpo"))
    line = one_error_line(*run_cli(capsys, "opro", "run", "--resume", "--run-dir", run_dir)[::2])
    assert "does not hold an OPRO run" in line


# --------------------------------------------------------------------------- versions


@pytest.mark.parametrize("file", ["config.json", "result.json", "journal"])
def test_a_file_from_a_newer_format_is_refused(
    run_dir: Path, capsys: pytest.CaptureFixture[str], file: str
) -> None:
    if file == "journal":
        add_record(run_dir, {"event": "run_resumed", "format_version": FORMAT_VERSION + 1, "time": 0})
    else:
        edit_json(run_dir / file, lambda d: d.update(format_version=FORMAT_VERSION + 1))
    before = snapshot(run_dir)
    argvs = [["opro", "report", run_dir]]
    if file != "result.json":  # a resumed run rewrites result.json and reads nothing from it
        argvs.append(["opro", "run", "--resume", "--run-dir", run_dir])
    for argv in argvs:
        line = one_error_line(*run_cli(capsys, *argv)[::2])
        assert f"written by a newer promptopt (run-directory format {FORMAT_VERSION + 1}" in line, line
        assert "upgrade promptopt" in line
        assert snapshot(run_dir) == before


def test_a_run_without_versions_is_read_as_format_1(
    tmp_path: Path, run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """What the release before versions wrote (complete, unversioned) still resumes and reports;
    it resumes exactly as a versioned copy of it does."""
    for name in ("config.json", "result.json"):
        edit_json(run_dir / name, lambda d: d.pop("format_version"))
    journal = run_dir / "journal.jsonl"
    records = [{k: v for k, v in r.items() if k != "format_version"} for r in read_journal(journal)]
    journal.write_text("".join(json.dumps(r) + "\n" for r in records))
    code, out, err = run_cli(capsys, "opro", "run", "--resume", "--run-dir", run_dir, "--steps", "3")
    assert code == 0, err
    assert "best pair: [15, 14]" in out
    code, _, err = run_cli(capsys, "opro", "report", run_dir)
    assert code == 0, err
    assert "format_version" not in json.loads((run_dir / "config.json").read_text())  # not rewritten


def test_a_run_from_before_constrained_decoding_resumes_unconstrained(
    run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The two keys whose absence has a known meaning (runs from before re-asking and constrained
    decoding never did either) are the only ones a resume fills in."""
    edit_json(run_dir / "config.json", lambda c: [c["opro"].pop("constrained"), c["opro"].pop("max_reasks")])
    code, _, err = run_cli(capsys, "opro", "run", "--resume", "--run-dir", run_dir)
    assert code == 0, err


# --------------------------------------------------------------------------- journal records


@pytest.mark.parametrize(
    ("record", "named"),
    [
        ({"event": "trial", "score": "abc"}, "record {n} (trial) has no 'trial'"),
        ({"event": "trial", "trial": "w=1, b=2"}, "trial must be a JSON object, got 'w=1, b=2'"),
        (
            {"event": "trial", "trial": {"step": "2", "index": 0, "status": "scored", "text": "x"}},
            "trial.step must be an integer, got '2'",
        ),
        (
            {"event": "trial", "trial": {"step": 2, "index": 0, "status": "great", "text": "x"}},
            "trial.status must be one of",
        ),
        (
            {
                "event": "trial",
                "trial": {"step": 2, "index": 0, "status": "scored", "text": "x", "score": "abc"},
            },
            "trial.score must be a number or null, got 'abc'",
        ),
        ({"event": "step_done", "step": "two"}, "step must be an integer, got 'two'"),
        ({"event": "step_done", "step": 2, "usage": {"calls": "x"}}, "usage.calls must be an integer"),
        ({"event": "step_aborted"}, "has no 'step'"),
        (
            {"event": "run_finished", "usage": [1]},
            "usage must be a JSON object or null, got a JSON list of length 1",
        ),
        ([1, 2], "line {n} is not a JSON object"),
    ],
)
def test_a_journal_record_of_the_wrong_shape_is_one_line(
    run_dir: Path, capsys: pytest.CaptureFixture[str], record: Any, named: str
) -> None:
    n = len(read_journal(run_dir / "journal.jsonl")) + 1  # the record's number, and its line's
    add_record(run_dir, record)
    named = named.format(n=n)
    before = snapshot(run_dir)
    for argv in (["opro", "run", "--resume", "--run-dir", run_dir], ["opro", "report", run_dir]):
        line = one_error_line(*run_cli(capsys, *argv)[::2])
        assert "journal.jsonl" in line and named in line, line
        assert snapshot(run_dir) == before


def test_records_the_replay_does_not_read_may_hold_anything(
    run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Later versions add records and keys: what the replay does not read is not checked."""
    add_record(run_dir, {"event": "a_later_kind", "step": "whatever"})
    add_record(run_dir, {"event": ["odd"]})
    add_record(run_dir, {"no_event": True})
    code, _, err = run_cli(capsys, "opro", "run", "--resume", "--run-dir", run_dir)
    assert code == 0, err


# --------------------------------------------------------------------------- result.json


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda r: r.update(best_score="high"), "best_score must be a number or null, got 'high'"),
        (lambda r: r.update(report=[]), "report must be a JSON object, got a JSON list of length 0"),
        (lambda r: r.pop("best"), "has no 'best'"),
    ],
)
def test_a_result_of_the_wrong_shape_is_one_line_for_the_report(
    run_dir: Path, capsys: pytest.CaptureFixture[str], change: Callable[[dict[str, Any]], object], named: str
) -> None:
    edit_json(run_dir / "result.json", change)
    before = snapshot(run_dir)
    line = one_error_line(*run_cli(capsys, "opro", "report", run_dir)[::2])
    assert "result.json" in line and named in line, line
    assert snapshot(run_dir) == before
