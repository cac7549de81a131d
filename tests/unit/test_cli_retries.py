"""Retries against an unreachable server: folded into a line, then the one error line (issue 8).

Before, every retry of every request was its own ``promptopt: ... attempt n failed`` line: 32 of
them for one OPRO step against a closed port, burying the error line."""

from __future__ import annotations

import logging
import socket
from pathlib import Path

import pytest

from promptopt.cli import _NoticeHandler, main
from promptopt.llm import openai_compat
from promptopt.llm.base import RETRY_LOG_ATTR, RetryNotice

ERROR = "promptopt: error: "


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(openai_compat.Backoff, "__call__", lambda self, state: 0.0)


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    with pytest.raises(SystemExit) as info:
        main(argv)
    err = capsys.readouterr().err
    return int(info.value.code or 0), [ln for ln in err.splitlines() if ln.strip()]


def test_closed_port_shows_one_retry_line_then_the_error(
    no_backoff: None, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROMPTOPT_CACHE_DIR", str(tmp_path / "cache"))
    model = f"openai:m@http://127.0.0.1:{_closed_port()}/v1"
    argv = ["opro", "run", "--task", "linear-regression", "--optimizer-model", model, "--steps", "1",
            "--per-step", "8", "--run-dir", str(tmp_path / "run")]  # fmt: skip
    code, lines = _run(argv, capsys)
    assert code == 2, lines
    assert lines[-1].startswith(ERROR) and "127.0.0.1" in lines[-1], lines
    assert sum(ln.startswith(ERROR) for ln in lines) == 1, lines
    retries = [ln for ln in lines if "attempt" in ln and not ln.startswith(ERROR)]
    assert len(retries) == 1, "\n".join(lines)
    assert "attempt 1 of 5" in retries[0] and "no connection" in retries[0], retries


def test_debug_shows_every_retry(
    no_backoff: None, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROMPTOPT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("PROMPTOPT_MAX_RETRIES", "2")
    model = f"openai:m@http://127.0.0.1:{_closed_port()}/v1"
    argv = ["opro", "run", "--task", "linear-regression", "--optimizer-model", model, "--steps", "1",
            "--per-step", "1", "--run-dir", str(tmp_path / "run")]  # fmt: skip
    with pytest.raises(openai_compat.LLMConnectionError):
        main(["--debug", *argv])
    err = capsys.readouterr().err
    assert "attempt 1 of 3 failed" in err and "attempt 2 of 3 failed" in err, err


def _record(notice: RetryNotice) -> logging.LogRecord:
    record = logging.LogRecord(
        "promptopt.llm.openai_compat", logging.INFO, __file__, 1, "%s", (notice,), None
    )
    setattr(record, RETRY_LOG_ATTR, notice)
    return record


def test_retries_fold_into_one_line_per_interval(capsys: pytest.CaptureFixture[str]) -> None:
    now = [100.0]
    handler = _NoticeHandler(10.0, clock=lambda: now[0])
    handler.setFormatter(logging.Formatter("promptopt: %(message)s"))
    for attempt in (1, 2, 1, 3):
        handler.emit(_record(RetryNotice("openai:m", attempt, 5, "HTTP 503", 0.5)))
        now[0] += 1
    now[0] += 10
    handler.emit(_record(RetryNotice("openai:m", 4, 5, "timeout", 0.5)))
    handler.emit(logging.LogRecord("promptopt", logging.INFO, __file__, 1, "plain notice", None, None))
    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        "promptopt: openai:m: a request failed (HTTP 503), retrying (attempt 1 of 5; "
        "retries are summarised every 10s)",
        "promptopt: openai:m: 4 more failed attempts retried in 14s (latest: attempt 4 of 5, timeout)",
        "promptopt: plain notice",
    ]


def test_retry_notice_text_has_attempt_of_max_and_reason() -> None:
    assert str(RetryNotice("openai:m", 2, 5, "HTTP 429", 1.25)) == (
        "openai:m: attempt 2 of 5 failed (HTTP 429); retrying in 1.25s"
    )
