"""The ``promptopt`` command: a typer app whose sub-apps live one per module.

Why ``main`` wraps the app: every error a user can cause must end in one line on stderr and exit
code 2, never a traceback. typer/click run in non-standalone mode so that this function sees
their usage errors too; ``--debug`` (or ``PROMPTOPT_DEBUG=1``) shows tracebacks for bug reports.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator

import click
import typer

from promptopt.cli import bpo, models, opro, runs, serve, tasks
from promptopt.cli.common import EXIT_USAGE, fail_line
from promptopt.errors import PromptoptError
from promptopt.llm.base import RETRY_LOG_ATTR, RetryNotice

app = typer.Typer(
    name="promptopt",
    help="Align LLMs without touching their weights: BPO prompt rewriting and OPRO prompt search.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(opro.app, name="opro")
app.add_typer(bpo.app, name="bpo")
app.add_typer(tasks.app, name="tasks")
app.add_typer(models.app, name="models")
app.add_typer(runs.app, name="runs")
app.command("serve")(serve.serve_command)


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors."),
) -> None:
    """promptopt: prompt optimization for black-box LLMs."""


def _exception_classes() -> tuple[tuple[type, ...], tuple[type, ...], tuple[type, ...], tuple[type, ...]]:
    """(exit, abort, usage-error, no-args-help) classes of click and of typer's vendored click.

    Why both: typer ≥ 0.20 vendors its own click (``typer._click``) whose exceptions do not derive
    from ``click``'s; older typer raises click's own. Catching both keeps the one-line contract.
    """
    exits: list[type] = [click.exceptions.Exit, typer.Exit]
    aborts: list[type] = [click.exceptions.Abort, typer.Abort]
    usage: list[type] = [click.ClickException]
    no_args: list[type] = []
    try:
        from typer._click import exceptions as vendored
    except ImportError:
        pass
    else:
        usage.append(vendored.ClickException)
        no_args.append(vendored.NoArgsIsHelpError)
    if hasattr(click.exceptions, "NoArgsIsHelpError"):
        no_args.append(click.exceptions.NoArgsIsHelpError)
    return tuple(exits), tuple(aborts), tuple(usage), tuple(no_args)


class _CurrentStderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at emit time (test capture swaps it per test)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


#: Seconds during which further retry notices are counted instead of shown.
RETRY_FOLD_SECONDS = 10.0


class _NoticeHandler(_CurrentStderrHandler):
    """Shows library notices, folding backend retries into at most one line per ``fold_seconds``.

    Why: against an unreachable or overloaded server every request of a batch retries a few
    times; one line per retry buried the one error line under dozens (issue 8). The first retry
    of a burst is shown with its attempt count and reason; the ones after it within
    ``fold_seconds`` are counted and reported with the next shown notice. A line that updates in
    place would fight the progress bar for the terminal and is useless in a log file, so these are
    plain lines. ``fold_seconds=None`` (``--debug``) shows every retry.
    """

    def __init__(self, fold_seconds: float | None, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.fold_seconds = fold_seconds
        self._clock = clock
        self._shown_at: float | None = None
        self._folded = 0

    def emit(self, record: logging.LogRecord) -> None:
        notice = getattr(record, RETRY_LOG_ATTR, None)
        if not isinstance(notice, RetryNotice) or self.fold_seconds is None:
            super().emit(record)
            return
        now = self._clock()
        if self._shown_at is not None and now - self._shown_at < self.fold_seconds:
            self._folded += 1
            return
        if self._shown_at is None:
            text = (
                f"{notice.model}: a request failed ({notice.reason}), retrying "
                f"(attempt {notice.attempt} of {notice.max_attempts}; "
                f"retries are summarised every {self.fold_seconds:g}s)"
            )
        else:
            text = (
                f"{notice.model}: {self._folded + 1} more failed attempts retried in "
                f"{now - self._shown_at:.0f}s (latest: attempt {notice.attempt} of "
                f"{notice.max_attempts}, {notice.reason})"
            )
        self._shown_at, self._folded = now, 0
        super().emit(logging.makeLogRecord({**record.__dict__, "msg": text, "args": None}))


@contextlib.contextmanager
def _library_notices(debug: bool) -> Iterator[None]:
    """Show the library's INFO notices (e.g. where the embedded weights are; retries, folded) on
    stderr while the command runs, then put the logger back as it was.

    Library modules only log; the CLI decides what a person sees. Undone on exit so that calling
    ``main`` in-process (tests, notebooks) leaves the caller's logging untouched.
    """
    logger = logging.getLogger("promptopt")
    handler = _NoticeHandler(None if debug else RETRY_FOLD_SECONDS)
    handler.setFormatter(logging.Formatter("promptopt: %(message)s"))
    saved = (logger.level, logger.propagate)
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if debug else logging.INFO)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get("PROMPTOPT_DEBUG") == "1"
    exits, aborts, usage_errors, no_args = _exception_classes()
    try:
        with _library_notices(debug):
            rv = app(args=args, prog_name="promptopt", standalone_mode=False)
    except exits as exc:
        raise SystemExit(getattr(exc, "exit_code", 0)) from None
    except aborts:
        fail_line("aborted")
        raise SystemExit(130) from None
    except no_args as exc:  # a bare group: show its help, as --help would
        sys.stdout.write(exc.format_message() + "\n")
        raise SystemExit(0) from None
    except usage_errors as exc:
        if debug:
            raise
        msg = exc.format_message()
        hint = ""
        ctx = getattr(exc, "ctx", None)
        if ctx is not None:
            hint = f" (see '{ctx.command_path} --help')"
        fail_line(f"{msg}{hint}")
        raise SystemExit(EXIT_USAGE) from None
    except PromptoptError as exc:
        if debug:
            raise
        fail_line(str(exc))
        raise SystemExit(EXIT_USAGE) from None
    except KeyboardInterrupt:
        fail_line("interrupted")
        raise SystemExit(130) from None
    except Exception as exc:  # a bug: one line, with the way to see more
        if debug:
            raise
        fail_line(f"internal error: {exc.__class__.__name__}: {exc} (rerun with --debug for the traceback)")
        raise SystemExit(1) from None
    if isinstance(rv, int) and rv:
        raise SystemExit(rv)
