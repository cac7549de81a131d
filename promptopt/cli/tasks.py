"""`promptopt tasks`: what tasks are registered (built-ins and plug-ins) and their options."""

from __future__ import annotations

import typer
from rich.table import Table

from promptopt.cli.common import console
from promptopt.errors import PromptoptError
from promptopt.tasks.base import get_task_entry, task_names

app = typer.Typer(help="Tasks that optimizers can work on.", no_args_is_help=True)


@app.command("list")
def list_command() -> None:
    """Show the registered tasks and their options (pass them as flags or --task-option K=V)."""
    table = Table(title="promptopt tasks", show_lines=True)
    table.add_column("task", style="bold")
    table.add_column("summary")
    table.add_column("options (default)")
    for name in task_names():
        try:
            entry = get_task_entry(name)
        except (
            PromptoptError,
            ImportError,
            AttributeError,
        ) as exc:  # a broken plug-in must not hide the rest
            table.add_row(name, f"(cannot load: {exc.__class__.__name__}: {exc})", "")
            continue
        opts = [
            f"{opt}={default!r}" + (f" ({ann})" if ann else "")
            for opt, ann, default in entry.options()
            if opt not in ("scorer", "judge_llm")  # models are given as --scorer-model / --judge-model
        ]
        table.add_row(name, entry.summary, "\n".join(opts) or "—")
    console().print(table)
