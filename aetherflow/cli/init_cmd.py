"""`aether init`: a starter aetherflow.toml, the `.aetherflow/` state folder, and a `.gitignore` entry for it.

The starter file is short on purpose: budget, privacy and the check commands detected in the repository, with
a pointer to aetherflow.toml.example for everything else. It is validated before it is written.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from aetherflow import paths
from aetherflow.cli import app
from aetherflow.cli._output import console, require_repo_root
from aetherflow.errors import UsageError

GITIGNORE_ENTRY = f"{paths.STATE_DIR_NAME}/"

_STARTER = """\
# AetherFlow configuration for this repository.
# Layers, lowest first: built-in defaults < your user config < this file < AETHER_* variables < flags.
# Only what differs from the defaults needs to be here; aetherflow.toml.example documents every key.
# Agents: `aether agents list|add|edit|remove`. Models and keys: `aether models`. Health: `aether doctor`.

[budget]
# Spending limits in USD. A call that could pass a limit is refused before anything is sent.
per_run_usd = 2.0
per_day_usd = 10.0

[privacy]
# Replace secrets (API keys, tokens, private keys) with placeholders before text leaves the machine.
redact_secrets = true
# true: use only the local model; nothing is sent to any provider.
local_only = false

[checks.commands]
# Commands agents may run to check their work (name = command).
{checks}"""


def detect_checks(repo_root: Path) -> dict[str, str]:
    """Check commands that are obvious from the repository's files (tests and linters)."""
    found: dict[str, str] = {}
    pyproject = repo_root / "pyproject.toml"
    python_project = pyproject.is_file() or (repo_root / "setup.py").is_file() or (repo_root / "setup.cfg").is_file()
    if python_project and ((repo_root / "tests").is_dir() or (repo_root / "test").is_dir()):
        found["tests"] = "python -m pytest -q"
    if (repo_root / "ruff.toml").is_file() or (repo_root / ".ruff.toml").is_file() or (
        pyproject.is_file() and "[tool.ruff" in pyproject.read_text(encoding="utf-8", errors="replace")
    ):
        found["lint"] = "ruff check ."
    found.update(_package_json_checks(repo_root / "package.json"))
    if (repo_root / "Cargo.toml").is_file():
        found.setdefault("tests", "cargo test")
    if (repo_root / "go.mod").is_file():
        found.setdefault("tests", "go test ./...")
    return found


def _package_json_checks(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    try:
        scripts = json.loads(path.read_text(encoding="utf-8")).get("scripts", {})
    except (ValueError, AttributeError):
        return {}
    found = {}
    if isinstance(scripts, dict):
        if "test" in scripts:
            found["tests"] = "npm test"
        if "lint" in scripts:
            found["lint"] = "npm run lint"
    return found


def starter_config(checks: dict[str, str]) -> str:
    """The text of a new aetherflow.toml."""
    if checks:
        lines = "".join(f"{name} = {json.dumps(command)}\n" for name, command in checks.items())
    else:
        lines = '# tests = "python -m pytest -q"\n# lint = "ruff check ."\n'
    return _STARTER.format(checks=lines)


def ensure_gitignored(repo_root: Path) -> bool:
    """Add `.aetherflow/` to the repository's .gitignore once; True when the file was changed."""
    gitignore = repo_root / ".gitignore"
    text = gitignore.read_text(encoding="utf-8") if gitignore.is_file() else ""
    accepted = {GITIGNORE_ENTRY, paths.STATE_DIR_NAME, f"/{GITIGNORE_ENTRY}", f"/{paths.STATE_DIR_NAME}"}
    if any(line.strip() in accepted for line in text.splitlines()):
        return False
    separator = "" if not text or text.endswith("\n") else "\n"
    with gitignore.open("a", encoding="utf-8") as handle:
        handle.write(f"{separator}# AetherFlow's local state (index, ledger, runs)\n{GITIGNORE_ENTRY}\n")
    return True


@app.command("init")
def init(
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing aetherflow.toml.")] = False,
) -> None:
    """Write a starter aetherflow.toml and the .aetherflow/ state folder (ignored by git)."""
    from aetherflow.config.editor import atomic_write_text
    from aetherflow.config.trust import trust_repository

    repo_root = require_repo_root()
    target = repo_root / paths.REPO_CONFIG_NAME
    if target.exists() and not force:
        raise UsageError(
            f"{target} already exists; it was left unchanged.",
            "Edit it (see aetherflow.toml.example), or run `aether init --force` to replace it.",
        )
    checks = detect_checks(repo_root)
    text = starter_config(checks)
    _validate(repo_root, text)
    atomic_write_text(target, text)
    # The user asked for this file and is shown what it holds: its check commands are theirs, so honour them.
    trust_repository(repo_root)
    paths.ensure_state_dir(repo_root)
    ignored = ensure_gitignored(repo_root)
    verb = "Added" if ignored else "Already had"
    out = console()
    for line in (
        f"Wrote {target}" + (f" (checks: {', '.join(checks)})" if checks else "") + ", trusted as written",
        f"Created {paths.state_dir(repo_root)}/",
        f"{verb} {GITIGNORE_ENTRY} in {repo_root / '.gitignore'}",
    ):
        out.print("[green]✓[/] " + escape(line))
    out.print("Next: `aether doctor` to check keys and the local model, `aether models` to see the catalogue.")


def _validate(repo_root: Path, text: str) -> None:
    """Validate the starter as the repository layer, so init never writes a file the loader would reject."""
    import tomllib

    from aetherflow.config.loader import load_settings

    load_settings(repo_root, repo_config=tomllib.loads(text))
