"""MkDocs hook: the CLI reference page is generated at build time from the typer app itself.

Why a hook and not a hand-written page: the reference must say what ``promptopt --help`` says, so a
flag renamed in code cannot leave a stale copy here. The text comes from typer's own Markdown
generator (the one behind ``typer MODULE utils docs``), run in-process on ``promptopt.cli.app``.
Why not the mkdocs-typer2 plugin: its native engine fails on typer >= 0.20's vendored click
objects, and its legacy engine shells out to a ``typer`` executable on PATH and renders an empty
page, without an error, when that executable belongs to another environment.
"""

from __future__ import annotations

from typing import Any

#: the line in a page that the generated reference replaces
MARKER = "<!-- promptopt-cli-reference -->"


def cli_reference_markdown() -> str:
    """The whole command tree (every verb, argument and option with its help) as Markdown."""
    import typer
    from typer.cli import get_docs_for_click

    from promptopt.cli import app

    command = typer.main.get_command(app)
    ctx = typer.Context(command, info_name="promptopt")
    text = get_docs_for_click(obj=command, ctx=ctx, name="promptopt")
    # the page has its own title: the generated tree starts one level below it
    return "\n".join(
        "#" + line if line.startswith("#") and "`promptopt" in line else line
        for line in text.strip().splitlines()
    )


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """Replace :data:`MARKER` with the generated reference (other pages pass through)."""
    if MARKER not in markdown:
        return markdown
    return markdown.replace(MARKER, cli_reference_markdown())
