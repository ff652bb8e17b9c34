"""Small helpers the configuration commands share: consoles, JSON output, check marks, the repository lookup.

JSON goes straight to stdout through `typer.echo`, never through rich, so it is never wrapped, coloured or
highlighted and a script can always parse it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import typer
from rich.console import Console

from aetherflow import paths
from aetherflow.errors import NotARepositoryError

CheckStatus = Literal["ok", "warn", "fail", "skip"]

MARKS: dict[CheckStatus, str] = {
    "ok": "[green]✓[/]",
    "warn": "[yellow]![/]",
    "fail": "[red]✗[/]",
    "skip": "[dim]-[/]",
}


def console() -> Console:
    """A console on stdout for human-readable output (tables, confirmations)."""
    return Console(highlight=False)


def err_console() -> Console:
    """A console on stderr for notes that must not mix with machine-readable stdout."""
    return Console(stderr=True, highlight=False)


def print_json(data: Any) -> None:
    """Print `data` as indented JSON on stdout."""
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False, sort_keys=False))


def require_repo_root(cwd: Path | None = None) -> Path:
    """The work tree root around `cwd`, or the NotARepositoryError every command gives outside a repository."""
    root = paths.find_repo_root(cwd)
    if root is None:
        raise NotARepositoryError(
            f"{(cwd or Path.cwd()).resolve()} is not inside a git repository.",
            "cd into your project (or run `git init` first), then run the command again.",
        )
    return root


def short_source(layer_name: str, repo_root: Path | None) -> str:
    """A short label for a configuration layer: 'built-in', 'aetherflow.toml', the user file's path, ..."""
    from aetherflow.config.loader import DEFAULTS_FILE, repo_config_file

    if layer_name == str(DEFAULTS_FILE):
        return "built-in"
    if repo_root is not None and layer_name == str(repo_config_file(repo_root)):
        return paths.REPO_CONFIG_NAME
    if layer_name == str(paths.user_config_file()):
        return "user config"
    return layer_name
