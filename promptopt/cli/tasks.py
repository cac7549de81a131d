"""`promptopt tasks` (being built in this session)."""

import typer

app = typer.Typer(help="tasks commands", no_args_is_help=True)
