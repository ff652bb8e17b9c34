"""The `aether` command line. Each command group lives in its own module; this one only assembles them.

Nothing heavy is imported here: LiteLLM, fastembed, Qdrant and Textual are imported inside the commands that
use them, so `aether --help` stays instant.
"""

from __future__ import annotations

import sys

import click
import typer
from rich.console import Console
from rich.markup import escape

from aetherflow import __version__
from aetherflow.errors import AetherError

app = typer.Typer(
    name="aether",
    help="AetherFlow: plan software work as a graph of subtasks and route each to the cheapest capable model.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"aether {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """AetherFlow command line."""


def _register() -> None:
    # Imported for their side effect of adding commands to `app`; each module keeps its heavy imports lazy.
    from aetherflow.cli import (  # noqa: F401
        agents,
        ask,
        doctor,
        hook_cmd,
        index_cmd,
        init_cmd,
        models,
        review_cmd,
        run_cmd,
        runs_cmd,
        search_cmd,
        stats_cmd,
        trust_cmd,
        tui_cmd,
    )


def main() -> None:
    """Entry point of the `aether` script: run the app, turning AetherError into a message and exit code."""
    _register()
    try:
        code = app(standalone_mode=False)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        Console(stderr=True).print("aborted")
        sys.exit(1)
    except AetherError as exc:
        err = Console(stderr=True)
        err.print(f"[bold red]error:[/] {escape(exc.message)}", highlight=False)
        if exc.hint:
            err.print(f"  [yellow]→[/] {escape(exc.hint)}", highlight=False)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        Console(stderr=True).print("interrupted")
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)
