"""The CLI shell: help answers, user errors are one line on stderr with exit code 2."""

from __future__ import annotations

import subprocess
import sys

import pytest


def cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "promptopt", *args], capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.parametrize("args", [["--help"], ["opro", "--help"], ["bpo", "--help"], ["tasks", "--help"]])
def test_help_answers(args: list[str]) -> None:
    res = cli(*args)
    assert res.returncode == 0, res.stderr
    assert "Usage" in res.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["no-such-verb"],
        ["opro", "run", "--no-such-flag"],
        ["models", "--bogus"],
    ],
)
def test_usage_errors_are_one_line_exit_2(args: list[str]) -> None:
    res = cli(*args)
    assert res.returncode == 2
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("promptopt: error:")
    assert "Traceback" not in res.stderr
