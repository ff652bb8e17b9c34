"""Prompts are data: one Markdown file per role, shipped with the package, overridable per repository."""

from __future__ import annotations

from pathlib import Path

from aetherflow import paths
from aetherflow.errors import ConfigError


def shipped_prompt_names() -> set[str]:
    """File names of the prompts shipped with the package ('coder.md', 'ask.md', ...)."""
    return {p.name for p in paths.prompts_dir().glob("*.md")}


def resolve_prompt(name: str, repo_root: Path | None) -> Path:
    """Find prompt `name`: a shipped prompt of exactly that name, else a file at that path inside the repository.

    Shipped names win so that a file which merely happens to be called `coder.md` at the root of a repository
    (or one planted there) never replaces an agent's instructions; to use your own, configure a name that is not
    shipped (`prompts/my-coder.md`, or `./coder.md`). A repository path that resolves outside the repository
    (through `..` or a symlink) is never used.
    """
    shipped_names = shipped_prompt_names()
    if name in shipped_names:
        return paths.prompts_dir() / name
    if repo_root is not None:
        candidate = repo_root / name
        if candidate.is_file() and paths.is_within(candidate, repo_root):
            return candidate
    raise ConfigError(
        f"Prompt file '{name}' was found neither in the repository nor among the shipped prompts.",
        f"Use a path relative to the repository root, or one of: {', '.join(sorted(shipped_names))}.",
    )


def load_prompt(name: str, repo_root: Path | None = None) -> str:
    """The text of prompt `name` (see resolve_prompt)."""
    return resolve_prompt(name, repo_root).read_text(encoding="utf-8").strip()
