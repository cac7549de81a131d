"""Run directory: atomic files, durable journal, torn-tail repair, secrets redacted."""

from __future__ import annotations

import json
import os

import pytest

from promptopt.errors import RunDirError
from promptopt.runs import Run, StopFlag, read_journal, redact


def test_create_writes_config_without_secrets(tmp_path) -> None:
    run = Run.create(tmp_path / "r", {"model": "openai:m@http://user:pw@host/v1", "api_key": "sk-secret"})
    run.close()
    text = (tmp_path / "r" / "config.json").read_text()
    assert "sk-secret" not in text and "pw@" not in text
    assert json.loads(text)["model"] == "openai:m@http://host/v1"


def test_torn_last_line_is_ignored_and_repaired(tmp_path) -> None:
    run = Run.create(tmp_path / "r", {"a": 1})
    for i in range(3):
        run.record({"event": "trial", "i": i})
    run.close()
    journal = tmp_path / "r" / "journal.jsonl"
    with open(journal, "ab") as fh:
        fh.write(b'{"event": "trial", "i": 3, "te')  # killed mid-write
    resumed = Run.resume(tmp_path / "r")
    assert [r["i"] for r in resumed.events("trial")] == [0, 1, 2]
    resumed.record({"event": "trial", "i": 3})
    resumed.close()
    records = read_journal(journal)
    assert [r["i"] for r in records if r["event"] == "trial"] == [0, 1, 2, 3]
    assert journal.read_bytes().endswith(b"\n")


def test_corruption_in_the_middle_is_an_error(tmp_path) -> None:
    journal = tmp_path / "journal.jsonl"
    journal.write_text('{"event":"a"}\nnot json\n{"event":"b"}\n')
    with pytest.raises(RunDirError, match="line 2"):
        read_journal(journal)


def test_existing_run_is_not_overwritten(tmp_path) -> None:
    Run.create(tmp_path / "r", {}).close()
    with pytest.raises(RunDirError, match="--resume"):
        Run.create(tmp_path / "r", {})


def test_resume_needs_a_run_dir(tmp_path) -> None:
    with pytest.raises(RunDirError, match="not a run directory"):
        Run.resume(tmp_path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_dir(tmp_path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    with pytest.raises(RunDirError, match="cannot write"):
        Run.create(locked / "r", {})


def test_unwritable_path_under_a_file(tmp_path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(RunDirError, match="cannot write"):
        Run.create(blocker / "r", {})


def test_result_is_atomic_and_stop_file(tmp_path) -> None:
    run = Run.create(tmp_path / "r", {})
    run.write_result({"best": "x"})
    assert json.loads((tmp_path / "r" / "result.json").read_text()) == {"best": "x"}
    assert not run.stop_requested()
    run.stop_file.write_text("")
    assert run.stop_requested()
    run.close()
    Run.resume(tmp_path / "r").close()  # a stale STOP must not stop the resumed run
    assert not (tmp_path / "r" / "STOP").exists()


def test_redact_keeps_token_counts() -> None:
    d = redact({"max_tokens": 5, "prompt_tokens": 3, "auth_token": "t", "nested": [{"api-key": "k"}]})
    assert d == {
        "max_tokens": 5,
        "prompt_tokens": 3,
        "auth_token": "<redacted>",
        "nested": [{"api-key": "<redacted>"}],
    }


def test_stop_flag_first_reason_wins() -> None:
    flag = StopFlag()
    assert not flag.is_set()
    flag.set("interrupted")
    flag.set("other")
    assert flag.is_set() and flag.reason == "interrupted"
