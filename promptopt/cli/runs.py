"""`promptopt runs compare RUN...` and `promptopt runs list [DIR]`: parse, call, print.

The reading, the table and the plot are :mod:`promptopt.runs_compare`'s; here the runs are named,
the table printed, and the files of ``--out`` written and listed.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path

import typer
from rich.table import Table

from promptopt.cli.common import console, err_console
from promptopt.errors import MissingExtraError
from promptopt.runs_compare import Score, compare_runs, list_runs
from promptopt.runs_compare.plot import PLOT_FILE, plot_curves
from promptopt.runs_compare.table import COLUMNS, DEFINITIONS, row, write_tables

app = typer.Typer(
    help="Compare and list runs (OPRO runs, bpo train and bpo eval folders).", no_args_is_help=True
)


#: the columns of the terminal table; the others (models, budget) follow it one line per run
_TERMINAL_COLUMNS = tuple(c for c in COLUMNS if c not in ("models", "budget"))


def _when(t: float | None) -> str:
    if t is None:
        return "—"
    return _dt.datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M")


@app.command("compare")
def compare_command(
    runs: list[Path] = typer.Argument(..., help="Run directories: OPRO runs, bpo train or bpo eval folders."),
    out: Path | None = typer.Option(
        None, "--out", help="Folder for compare.md, compare.json and compare.png (the plot: the plot extra)."
    ),
) -> None:
    """One table of the runs side by side; with --out, its markdown and JSON copies and one plot of
    score per step and per metric call."""
    summaries = compare_runs(runs)
    table = Table(title="runs compared")
    for col in _TERMINAL_COLUMNS:
        table.add_column(col, overflow="fold")
    for s in summaries:
        cells = row(s)
        table.add_row(*(cells[c] for c in _TERMINAL_COLUMNS))
    con = console()
    con.print(table)
    for s in summaries:  # the long cells, one line per run, so the table fits a terminal
        cells = row(s)
        con.print(
            f"{s.path}: {', '.join(f'{c} {cells[c]}' for c in COLUMNS if c not in _TERMINAL_COLUMNS)}",
            soft_wrap=True,
        )
    for name, meaning in DEFINITIONS.items():
        con.print(f"{name}: {meaning}", soft_wrap=True)
    for s in summaries:
        for note in s.notes:
            con.print(f"note: {s.path}: {note}", soft_wrap=True)
    if out is None:
        return
    written = write_tables(summaries, out)
    try:
        plot = plot_curves(summaries, out / PLOT_FILE)
    except MissingExtraError as exc:
        err_console().print(f"no plot: {exc}", soft_wrap=True)
    else:
        if plot is None:
            err_console().print("no plot: none of these runs has a score per step yet")
        else:
            written.append(plot)
    for path in written:
        con.print(str(path))


@app.command("list")
def list_command(
    directory: Path = typer.Argument(Path("runs"), help="Folder holding run directories (default: runs/)."),
) -> None:
    """One line per run directory found in DIR: kind, task, status (running/finished/stopped), best, started."""
    runs, notes = list_runs(directory)
    con = console()
    if not runs:
        con.print(f"no runs in {directory}", markup=False)
    rows = [_LIST_COLUMNS] + [
        (Path(s.path).name, s.kind, s.task, s.status, _best(s.best), _when(s.started)) for s in runs
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(_LIST_COLUMNS) - 1)]
    for r in rows if runs else ():  # one line per run, however wide: a line a script can read
        con.print("  ".join([*(c.ljust(w) for c, w in zip(r, widths, strict=False)), r[-1]]), soft_wrap=True,
                  markup=False)  # fmt: skip
    err = err_console()
    for note in notes:
        err.print(note, soft_wrap=True, markup=False)


_LIST_COLUMNS = ("run", "kind", "task", "status", "best", "started")


def _best(score: Score | None) -> str:
    if score is None or score.value is None:
        return "—"
    return f"{score.text()} ({score.label})"
