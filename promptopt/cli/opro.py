"""`promptopt opro` (being built in this session)."""

import typer

app = typer.Typer(help="opro commands", no_args_is_help=True)
