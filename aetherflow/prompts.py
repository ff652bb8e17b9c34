"""Prompts are data: one Markdown file per role, shipped with the package, overridable per repository."""

from __future__ import annotations

from pathlib import Path

from aetherflow import paths
from aetherflow.errors import ConfigError


def resolve_prompt(name: str, repo_root: Path | None) -> Path:
    """Find prompt `name`: a file at that path inside the repository wins, else the shipped prompt of that name.

    A repository path that resolves outside the repository (through `..` or a symlink) is never used.
    """
    if repo_root is not None:
        candidate = repo_root / name
        if candidate.is_file() and paths.is_within(candidate, repo_root):
            return candidate
    shipped = paths.prompts_dir() / name
    if shipped.is_file():
        return shipped
    available = ", ".join(sorted(p.name for p in paths.prompts_dir().glob("*.md")))
    raise ConfigError(
        f"Prompt file '{name}' was found neither in the repository nor among the shipped prompts.",
        f"Use a path relative to the repository root, or one of: {available}.",
    )


def load_prompt(name: str, repo_root: Path | None = None) -> str:
    """The text of prompt `name` (see resolve_prompt)."""
    return resolve_prompt(name, repo_root).read_text(encoding="utf-8").strip()
