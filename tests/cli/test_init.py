"""`aether init`: the starter file, the state folder, the .gitignore entry, and refusing to overwrite."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

from aetherflow.cli.init_cmd import detect_checks, ensure_gitignored
from aetherflow.config.loader import load_settings

from cli_support import AetherRun, CliInvoke


def test_init_writes_config_state_folder_and_gitignore(repo: Path, cli: CliInvoke) -> None:
    (repo / "pyproject.toml").write_text("[project]\nname = 'demo'\n")
    (repo / "tests").mkdir()

    result = cli("init")

    assert result.exit_code == 0, result.output
    config = repo / "aetherflow.toml"
    data = tomllib.loads(config.read_text())
    assert data["checks"]["commands"] == {"tests": "python -m pytest -q"}
    assert data["privacy"]["redact_secrets"] is True
    assert "aetherflow.toml.example" in config.read_text()
    assert (repo / ".aetherflow").is_dir()
    assert (repo / ".aetherflow" / ".gitignore").read_text().strip().endswith("*")
    assert ".aetherflow/" in (repo / ".gitignore").read_text().splitlines()
    settings = load_settings(repo)
    assert settings.checks.commands == {"tests": "python -m pytest -q"}
    assert str(config) in settings.sources


def test_gitignore_entry_is_added_once_and_existing_lines_kept(repo: Path, cli: CliInvoke) -> None:
    (repo / ".gitignore").write_text("node_modules")  # no trailing newline

    assert cli("init").exit_code == 0
    assert cli("init", "--force").exit_code == 0

    lines = (repo / ".gitignore").read_text().splitlines()
    assert lines[0] == "node_modules"
    assert lines.count(".aetherflow/") == 1


def test_ensure_gitignored_accepts_an_existing_spelling(tmp_path: Path) -> None:
    (tmp_path / ".gitignore").write_text("/.aetherflow\n")

    assert ensure_gitignored(tmp_path) is False
    assert (tmp_path / ".gitignore").read_text() == "/.aetherflow\n"


def test_init_refuses_to_overwrite_without_force(repo: Path, aether: AetherRun) -> None:
    config = repo / "aetherflow.toml"
    config.write_text("# mine\n[budget]\nper_run_usd = 1.0\n")

    refused = aether("init")

    assert refused.returncode == 2
    assert str(config) in refused.stderr
    assert "--force" in refused.stderr
    assert config.read_text() == "# mine\n[budget]\nper_run_usd = 1.0\n"

    forced = aether("init", "--force")

    assert forced.returncode == 0, forced.stderr
    assert "# mine" not in config.read_text()
    assert tomllib.loads(config.read_text())["budget"]["per_run_usd"] == 2.0


def test_init_outside_a_repository_fails_with_the_next_step(tmp_path: Path, aether: AetherRun) -> None:
    outside = tmp_path / "plain"
    outside.mkdir()

    result = aether("init", cwd=outside)

    assert result.returncode == 2
    assert "not inside a git repository" in result.stderr
    assert "git init" in result.stderr
    assert not (outside / "aetherflow.toml").exists()


def test_detect_checks_recognises_common_projects(tmp_path: Path) -> None:
    assert detect_checks(tmp_path) == {}
    (tmp_path / "package.json").write_text(json.dumps({"scripts": {"test": "jest", "lint": "eslint ."}}))
    assert detect_checks(tmp_path) == {"tests": "npm test", "lint": "npm run lint"}
    (tmp_path / "package.json").unlink()
    (tmp_path / "pyproject.toml").write_text("[tool.ruff]\nline-length = 100\n")
    (tmp_path / "tests").mkdir()
    assert detect_checks(tmp_path) == {"tests": "python -m pytest -q", "lint": "ruff check ."}


def test_starter_without_detected_checks_still_validates(repo: Path, cli: CliInvoke) -> None:
    assert cli("init").exit_code == 0

    text = (repo / "aetherflow.toml").read_text()
    assert '# tests = "python -m pytest -q"' in text
    assert load_settings(repo).checks.commands == {}
