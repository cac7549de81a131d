"""Running the ``promptopt`` command in-process, as the CLI tests do (tests only, no product code).

``main`` ends with ``SystemExit`` on an error (and typer may end with one on success), so a test
that reads the exit code next to what was printed would repeat the same try/except; this is the
one copy."""

from __future__ import annotations

from pathlib import Path

import pytest

from promptopt.cli import main


def run_cli(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    """Run ``promptopt ARGS``: (exit code, stdout, stderr). Returning without ``SystemExit`` is exit
    0, and so is ``SystemExit(None)``; paths are passed as strings, as a shell would."""
    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err
