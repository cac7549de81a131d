"""`promptopt bpo` (being built in this session)."""

import typer

app = typer.Typer(help="bpo commands", no_args_is_help=True)
