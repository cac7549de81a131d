"""Run directory, the one journal and the one JSON/JSONL reader: atomic files, durable appends,
torn-tail repair, secrets redacted."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from promptopt.errors import DataError, RunDirError
from promptopt.journal import Journal, RoutedJournal
from promptopt.records import parse_jsonl, read_json_object, read_records
from promptopt.runs import FORMAT_VERSION, Run, StopFlag, check_run_dir, read_journal, read_run_result, redact


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
    with pytest.raises(RunDirError, match="file is a file, not a directory"):
        Run.create(blocker / "r", {})
    with pytest.raises(RunDirError, match="is a file, not a directory"):
        Run.create(blocker, {})


def test_result_is_atomic_and_stop_file(tmp_path) -> None:
    run = Run.create(tmp_path / "r", {})
    run.write_result({"best": "x"})
    assert json.loads((tmp_path / "r" / "result.json").read_text()) == {
        "format_version": FORMAT_VERSION,
        "best": "x",
    }
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


# --------------------------------------------------------------------------- the one journal


def test_run_writes_through_the_one_journal(tmp_path) -> None:
    run = Run.create(tmp_path / "r", {})
    assert isinstance(run.journal, Journal)
    run.record({"event": "x", "url": "http://user:pw@host/v1"})
    run.close()
    assert run.records[-1]["url"] == "http://host/v1"  # the record as stored, redacted
    assert read_journal(tmp_path / "r" / "journal.jsonl")[-1] == run.records[-1]


def test_journal_repairs_a_torn_tail_replays_and_redacts(tmp_path) -> None:
    path = tmp_path / "sub" / "out.jsonl"
    with Journal(path) as j:
        stored = j.append({"id": "a", "api_key": "sk-1", "text": "see https://u:p@h/x"})
    assert stored == {"id": "a", "api_key": "<redacted>", "text": "see https://h/x"}
    with open(path, "ab") as fh:
        fh.write(b'{"id": "b", "te')  # killed mid-write
    with Journal(path) as j:
        assert [r["id"] for r in j.records] == ["a"]
        j.append({"id": "c"})
    assert [r["id"] for r in read_journal(path)] == ["a", "c"]
    assert b"sk-1" not in path.read_bytes() and b"u:p@" not in path.read_bytes()


def test_journal_with_a_corrupt_middle_raises_the_given_error_and_leaves_the_file(tmp_path) -> None:
    path = tmp_path / "out.jsonl"
    path.write_text('{"id":"a"}\nnot json\n{"id":"b"}\n')
    with pytest.raises(DataError, match="line 2"):
        Journal(path, error=DataError)
    assert path.read_text() == '{"id":"a"}\nnot json\n{"id":"b"}\n'


def test_journal_under_a_file_is_a_one_line_error(tmp_path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(DataError, match="cannot write"):
        Journal(tmp_path / "f" / "out.jsonl", error=DataError)


def test_routed_journal_replays_in_order_and_routes_appends(tmp_path) -> None:
    journals = {"dropped": Journal(tmp_path / "d.jsonl"), "kept": Journal(tmp_path / "k.jsonl")}
    with RoutedJournal(journals, lambda r: "kept" if r.get("status") == "kept" else "dropped") as log:
        log.append({"id": "1", "status": "kept"})
        log.append({"id": "1", "status": "dropped"})
        assert [r["status"] for r in log.records] == ["dropped", "kept"]  # a later journal wins
    assert [r["id"] for r in read_journal(tmp_path / "k.jsonl")] == ["1"]


# --------------------------------------------------------------------------- the one reader


def test_a_record_holding_a_line_separator_is_one_row(tmp_path) -> None:
    """U+2028 is written raw by ensure_ascii=False; str.splitlines would cut the record in two."""
    path = tmp_path / "rows.jsonl"
    rows = [{"prompt": "a\u2028b"}, {"prompt": "c\u0085d"}]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    assert read_records(path) == rows
    assert read_journal(path) == rows


def test_reader_messages_name_the_line(tmp_path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text('{"a": 1}\n[1]\n')
    with pytest.raises(DataError, match="line 2 is not a JSON object"):
        read_records(path)
    with pytest.raises(DataError, match="line 1 is not valid JSON"):
        parse_jsonl(b"{oops\n", where="x")
    assert parse_jsonl(b'{"a": 1}\n{"torn', where="x", tolerate_torn_tail=True) == [{"a": 1}]


def test_read_json_object(tmp_path) -> None:
    good, bad, listed = tmp_path / "g.json", tmp_path / "b.json", tmp_path / "l.json"
    good.write_text('{"a": 1}')
    bad.write_text("{ torn")
    listed.write_text("[1]")
    assert read_json_object(good) == {"a": 1}
    with pytest.raises(RunDirError, match="unreadable"):
        read_json_object(bad, error=RunDirError)
    with pytest.raises(DataError, match="JSON object"):
        read_json_object(listed)
    with pytest.raises(DataError, match="does not exist"):
        read_json_object(tmp_path / "none.json")


def test_one_writer_per_run_directory(tmp_path: Path) -> None:
    """A second process (here: a second open) cannot write a running run's directory; the lock goes
    with the run, so a later resume works."""
    first = Run.create(tmp_path / "r", {"task": "x"})
    with pytest.raises(RunDirError, match="in use by another promptopt process"):
        Run.resume(tmp_path / "r")
    with pytest.raises(RunDirError, match="in use"):
        Run.create(tmp_path / "r", {"task": "x"}, overwrite=True)
    first.record({"event": "step_done", "step": 0})
    first.close()
    again = Run.resume(tmp_path / "r")
    assert [r["event"] for r in again.records][:2] == ["run_started", "step_done"]
    again.close()


def test_a_killed_writer_leaves_no_stale_lock(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = (
        "import sys, time\nfrom promptopt.runs import Run\n"
        f"run = Run.create({str(tmp_path / 'r')!r}, {{'task': 'x'}})\nprint('ready', flush=True)\ntime.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        with pytest.raises(RunDirError, match="in use"):
            Run.resume(tmp_path / "r")
    finally:
        proc.kill()  # SIGKILL: no cleanup runs in the child
        proc.wait(timeout=10)
    Run.resume(tmp_path / "r").close()  # the OS dropped the lock with the process


# --------------------------------------------------------------------------- format version (issue 23 item 3)


def test_every_run_file_says_its_format(tmp_path: Path) -> None:
    """config.json, result.json and the journal's run_started / run_resumed records carry the
    format version, config.json first (what a reader checks first)."""
    run = Run.create(tmp_path / "r", {"task": "x", "format_version": 99})  # the caller's cannot win
    run.write_result({"best": "x"})
    run.close()
    Run.resume(tmp_path / "r").close()
    config = json.loads((tmp_path / "r" / "config.json").read_text())
    assert list(config) == ["format_version", "task"] and config["format_version"] == FORMAT_VERSION == 2
    assert read_run_result(tmp_path / "r")["format_version"] == FORMAT_VERSION
    records = read_journal(tmp_path / "r" / "journal.jsonl")
    assert [(r["event"], r["format_version"]) for r in records] == [
        ("run_started", FORMAT_VERSION),
        ("run_resumed", FORMAT_VERSION),
    ]


def _rewrite(path: Path, **changes: object) -> None:
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


@pytest.mark.parametrize("where", ["config", "journal"])
def test_a_run_from_a_newer_format_is_refused_before_anything_is_written(tmp_path: Path, where: str) -> None:
    Run.create(tmp_path / "r", {"task": "x"}).close()
    if where == "config":
        _rewrite(tmp_path / "r" / "config.json", format_version=FORMAT_VERSION + 1)
    else:
        journal = tmp_path / "r" / "journal.jsonl"
        journal.write_text(
            journal.read_text() + json.dumps({"event": "run_resumed", "format_version": 3}) + "\n"
        )
    (tmp_path / "r" / "STOP").write_text("")
    before = {p.name: p.read_bytes() for p in (tmp_path / "r").iterdir() if p.is_file()}
    with pytest.raises(
        RunDirError, match=r"newer promptopt \(run-directory format 3; this one reads formats 1 to 2\)"
    ):
        Run.resume(tmp_path / "r")
    assert {p.name: p.read_bytes() for p in (tmp_path / "r").iterdir() if p.is_file()} == before
    journal = tmp_path / "r" / "journal.jsonl"  # put back as it was: the refusal left no lock behind
    journal.write_text(journal.read_text().splitlines()[0] + "\n")
    _rewrite(tmp_path / "r" / "config.json", format_version=FORMAT_VERSION)
    Run.resume(tmp_path / "r").close()


@pytest.mark.parametrize("version", ["2", 0, True, None, 1.5])
def test_a_format_version_that_is_no_version_is_refused(tmp_path: Path, version: object) -> None:
    Run.create(tmp_path / "r", {}).close()
    _rewrite(tmp_path / "r" / "config.json", format_version=version)
    with pytest.raises(RunDirError, match="invalid format_version"):
        Run.resume(tmp_path / "r")


def test_a_result_from_a_newer_format_is_refused(tmp_path: Path) -> None:
    (tmp_path / "result.json").write_text(json.dumps({"format_version": 7, "best": "x"}))
    with pytest.raises(RunDirError, match="format 7"):
        read_run_result(tmp_path)


def test_files_without_a_version_are_format_1(tmp_path: Path) -> None:
    """What the release before versions wrote: no format_version anywhere."""
    run = Run.create(tmp_path / "r", {"task": "x"})
    run.write_result({"best": "x"})
    run.close()
    for name in ("config.json", "result.json"):
        data = json.loads((tmp_path / "r" / name).read_text())
        del data["format_version"]
        (tmp_path / "r" / name).write_text(json.dumps(data))
    journal = tmp_path / "r" / "journal.jsonl"
    journal.write_text(json.dumps({"event": "run_started", "time": 1.0}) + "\n")
    resumed = Run.resume(tmp_path / "r")
    assert resumed.config == {"task": "x"}
    resumed.close()
    assert read_run_result(tmp_path / "r") == {"best": "x"}


# --------------------------------------------------------------------------- a new run's directory


def test_check_run_dir_refuses_what_no_run_can_go_into_and_writes_nothing(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(RunDirError, match=r"run directory .*file is a file, not a directory"):
        check_run_dir(tmp_path / "file")
    with pytest.raises(RunDirError, match=r"cannot create run directory .*file is a file"):
        check_run_dir(tmp_path / "file" / "deeper" / "run")
    assert check_run_dir(tmp_path / "new" / "run") == tmp_path / "new" / "run"
    assert not (tmp_path / "new").exists()  # a check, not a mkdir
    Run.create(tmp_path / "old", {}).close()
    with pytest.raises(RunDirError, match="already holds a run"):
        check_run_dir(tmp_path / "old")
    check_run_dir(tmp_path / "old", overwrite=True)


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_check_run_dir_refuses_a_read_only_parent(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    with pytest.raises(RunDirError, match="locked is not writable"):
        check_run_dir(locked / "a" / "r")
