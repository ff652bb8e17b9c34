"""Edit the repository's `aetherflow.toml` without losing the user's comments or layout.

The file is edited with tomlkit (which keeps comments, order and formatting), the edited content is validated
as part of the whole layered configuration before anything is written, and the write is atomic (a temporary
file in the same folder, then `os.replace`), so an invalid edit or a crash never leaves a half-written file.
"""

from __future__ import annotations

import os
import tempfile
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import tomlkit
from tomlkit.exceptions import ParseError
from tomlkit.items import Table
from tomlkit.toml_document import TOMLDocument

from aetherflow.config.loader import load_settings, repo_config_file
from aetherflow.config.trust import trust_repository, trust_state
from aetherflow.config.models import Settings
from aetherflow.errors import ConfigError


def atomic_write_text(path: Path, text: str) -> None:
    """Replace `path` with `text` in one step; keep the old file's permissions when it exists."""
    mode = path.stat().st_mode & 0o777 if path.exists() else None
    handle = tempfile.NamedTemporaryFile(
        "w", encoding="utf-8", dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False
    )
    try:
        with handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        if mode is not None:
            os.chmod(handle.name, mode)
        os.replace(handle.name, path)
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise


def parse_document(text: str, path: Path) -> TOMLDocument:
    """Parse `text` with tomlkit; a syntax error becomes a ConfigError naming the file and line."""
    try:
        return tomlkit.parse(text)
    except ParseError as exc:
        raise ConfigError(
            f"{path} is not valid TOML: {exc}",
            "Fix the syntax at that line (see aetherflow.toml.example for the format).",
        ) from exc


class RepoConfigEditor:
    """The repository's `aetherflow.toml`, loaded for editing; `save()` validates then writes atomically."""

    def __init__(self, repo_root: Path, environ: Mapping[str, str] | None = None) -> None:
        self.repo_root = repo_root
        self.environ = environ
        self.path = repo_config_file(repo_root)
        self.original_text = self.path.read_text(encoding="utf-8") if self.path.is_file() else ""
        self.doc = parse_document(self.original_text, self.path)

    def _agents(self, create: bool) -> Table | None:
        agents = self.doc.get("agents")
        if agents is None and create:
            # A super table renders as `[agents.NAME]` headers only, with no empty `[agents]` line above them.
            agents = tomlkit.table(is_super_table=True)
            self.doc.add("agents", agents)
        return agents

    def agent_table(self, name: str) -> Mapping[str, Any] | None:
        """The agent's table in this file (None when this file does not mention the agent)."""
        agents = self._agents(create=False)
        return agents.get(name) if agents is not None else None

    def set_agent_fields(self, name: str, fields: Mapping[str, Any]) -> None:
        """Set `fields` on the agent's table, creating the table when needed; other keys and comments stay."""
        agents = self._agents(create=True)
        if name not in agents:
            agents.add(name, tomlkit.table())
        table = agents[name]
        for key, value in fields.items():
            table[key] = value

    def remove_agent(self, name: str) -> bool:
        """Delete the agent's table from this file; False when the file had none."""
        agents = self._agents(create=False)
        if agents is None or name not in agents:
            return False
        del agents[name]
        if not agents:
            del self.doc["agents"]
        return True

    def text(self) -> str:
        """The edited file content, ending with exactly one newline (removing a table leaves a blank line)."""
        rendered = tomlkit.dumps(self.doc)
        return rendered.rstrip("\n") + "\n" if rendered.strip() else ""

    def validate(self, text: str | None = None) -> Settings:
        """The whole layered configuration as it would be with this edit; raises the loader's ConfigError.

        The rendered text is re-read with the same parser the loader uses, so what is validated is exactly
        what will be written.
        """
        rendered = self.text() if text is None else text
        try:
            data = tomllib.loads(rendered)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(
                f"The edit would make {self.path} unreadable ({exc}); the file was left as it was.",
                "Make this change by hand in the file (aetherflow.toml.example shows every key).",
            ) from exc
        return load_settings(self.repo_root, environ=self.environ, repo_config=data)

    def save(self) -> Settings:
        """Validate, then write the file atomically. On a validation error the file is not touched.

        A file that was trusted (or did not exist) stays trusted: the user made this edit through AetherFlow.
        An untrusted one stays untrusted, because the rest of it is still content the user has not reviewed.
        """
        rendered = self.text()
        settings = self.validate(rendered)
        keep_trust = trust_state(self.repo_root, self.path) in ("trusted", "absent")
        atomic_write_text(self.path, rendered)
        if keep_trust and rendered:
            trust_repository(self.repo_root, self.path)
        return settings
