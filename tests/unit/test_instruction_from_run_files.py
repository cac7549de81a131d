"""`instruction_from_run` (and so `promptopt serve --instruction-from`) reads a run's files through
the project's versioned, validated reader: a newer format is refused with "upgrade promptopt", a
damaged file is one line naming the key, a missing file is one line — never a traceback, never a
silent default (a wrong position would serve a prompt that was never scored)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from promptopt.aligned import instruction_from_run
from promptopt.errors import RunDirError
from promptopt.runs import FORMAT_VERSION, Run


def _write_run(path: Path) -> Path:
    """A run directory as an instruction search writes it (config.json, journal, result.json)."""
    run = Run.create(
        path, {"task": "instructions", "task_config": {"position": "Q_end", "system_prompt": "S"}}
    )
    run.write_result(
        {
            "task": "instructions",
            "best": "train best",
            "best_score": 70.0,
            "report": {"task": {"instruction": "validated", "position": "Q_end"}},
            "demos": [{"input": "q", "output": "a"}],
        }
    )
    run.close()
    return path


def _edit(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def _set(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda d: d.__setitem__(key, value)


def _damage(run: Path, case: str) -> None:
    """Damage ``run`` as ``case`` says (the cases below, each with the message it must give)."""
    if case == "newer result":
        _edit(run / "result.json", _set("format_version", 99))
    elif case == "newer config":
        _edit(run / "config.json", _set("format_version", 99))
    elif case == "report not an object":
        _edit(run / "result.json", _set("report", ["validated"]))
    elif case == "score not a number":
        _edit(run / "result.json", _set("best_score", "high"))
    elif case == "unknown position":
        _edit(run / "config.json", lambda d: d["task_config"].__setitem__("position", "middle"))
    elif case == "report position not a string":
        _edit(run / "result.json", lambda d: d["report"]["task"].__setitem__("position", 3))
    elif case == "task_config not an object":
        _edit(run / "config.json", _set("task_config", ["Q_end"]))
    elif case == "not JSON":
        (run / "result.json").write_text('{"task": "instructions", ')
    elif case == "no result":
        (run / "result.json").unlink()
    elif case == "no config":
        (run / "config.json").unlink()
    else:  # pragma: no cover - a typo in the table
        raise AssertionError(case)


CASES = [
    ("newer result", "result.json was written by a newer promptopt (run-directory format 99"),
    ("newer config", "config.json was written by a newer promptopt (run-directory format 99"),
    ("report not an object", "result.json: report must be a JSON object or null, got a JSON list"),
    ("score not a number", "result.json: best_score must be a number or null, got 'high'"),
    ("unknown position", "config.json: task_config.position must be one of 'Q_begin'"),
    ("report position not a string", "result.json: report.task.position must be one of"),
    ("task_config not an object", "config.json: task_config must be a JSON object or null"),
    ("not JSON", "result.json is unreadable (not valid JSON"),
    ("no result", "holds no result.json"),
    ("no config", "is not a run directory (no config.json"),
]


def test_a_run_as_written_is_read(tmp_path: Path) -> None:
    found = instruction_from_run(_write_run(tmp_path / "run"))
    assert (found.text, found.position, found.score, found.system_prompt) == ("validated", "Q_end", 70.0, "S")
    assert [d.to_json() for d in found.demos] == [{"input": "q", "output": "a"}]
    assert json.loads((tmp_path / "run" / "result.json").read_text())["format_version"] == FORMAT_VERSION


@pytest.mark.parametrize(("case", "message"), CASES)
def test_a_damaged_or_newer_run_is_one_line(tmp_path: Path, case: str, message: str) -> None:
    run = _write_run(tmp_path / "run")
    _damage(run, case)
    with pytest.raises(RunDirError) as info:
        instruction_from_run(run)
    assert message in str(info.value) and "\n" not in str(info.value)
    if case.startswith("newer"):
        assert "upgrade promptopt" in str(info.value)


@pytest.mark.parametrize(("case", "message"), CASES)
def test_serve_instruction_from_a_damaged_run_exits_2_with_one_line(
    tmp_path: Path,
    case: str,
    message: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip("fastapi")
    pytest.importorskip("uvicorn")
    from promptopt.cli import main
    from promptopt.serve import runner

    def started(*args: object) -> None:  # a run misread must fail the test, not serve forever
        raise AssertionError("the server started on a damaged run")

    monkeypatch.setattr(runner, "serve_forever", started)

    run = _write_run(tmp_path / "run")
    _damage(run, case)
    with pytest.raises(SystemExit) as info:
        main(["serve", "--target", "fake:x", "--port", "0", "--instruction-from", str(run)])
    err = capsys.readouterr().err
    assert info.value.code == 2 and message in err and len(err.strip().splitlines()) == 1, err
