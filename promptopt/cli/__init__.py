"""The ``promptopt`` command: a typer app whose sub-apps live one per module.

Why ``main`` wraps the app: every error a user can cause must end in one line on stderr and exit
code 2, never a traceback. typer/click run in non-standalone mode so that this function sees
their usage errors too; ``--debug`` (or ``PROMPTOPT_DEBUG=1``) shows tracebacks for bug reports.
"""

from __future__ import annotations

import os
import sys

import click
import typer

from promptopt.cli import bpo, models, opro, tasks
from promptopt.cli.common import EXIT_USAGE, fail_line
from promptopt.errors import PromptoptError

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
app.command("models")(models.models_command)


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors."),
) -> None:
    """promptopt: prompt optimization for black-box LLMs."""


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get("PROMPTOPT_DEBUG") == "1"
    try:
        rv = app(args=args, prog_name="promptopt", standalone_mode=False)
    except click.exceptions.Exit as exc:
        raise SystemExit(exc.exit_code) from None
    except click.exceptions.Abort:
        fail_line("aborted")
        raise SystemExit(130) from None
    except click.ClickException as exc:
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
