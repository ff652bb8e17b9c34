"""`aether agents`: edits keep the user's comments, are validated before writing, and respect built-ins."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

from cli_support import AetherRun, CliInvoke, write_trusted_config

from aetherflow.config.loader import load_settings
from aetherflow.errors import UsageError

USER_FILE = """\
# Team settings: keep this comment.
[budget]
per_run_usd = 1.5  # agreed with finance
"""


def test_add_edit_remove_round_trip_keeps_user_comments(repo: Path, cli: CliInvoke) -> None:
    config = repo / "aetherflow.toml"
    write_trusted_config(repo, USER_FILE)

    added = cli("agents", "add", "reviewer", "--role", "verifier", "--model", "deepseek",
                "--fallback", "sonnet", "--fallback", "codestral", "--tool", "read_file", "--tool", "grep",
                "--description", "Reviews diffs.", "--temperature", "0.3")
    assert added.exit_code == 0, added.output
    agent = load_settings(repo).agents["reviewer"]
    assert (agent.model, agent.fallbacks, agent.tools) == ("deepseek", ["sonnet", "codestral"], ["read_file", "grep"])
    assert agent.prompt == "verifier.md"
    assert agent.temperature == 0.3

    write_trusted_config(repo, config.read_text().replace('model = "deepseek"', 'model = "deepseek"  # cheapest'))
    edited = cli("agents", "edit", "reviewer", "--model", "codestral", "--output", "json", "--max-output-tokens", "900")
    assert edited.exit_code == 0, edited.output
    text = config.read_text()
    assert "# Team settings: keep this comment." in text
    assert "# agreed with finance" in text
    assert 'model = "codestral"  # cheapest' in text
    agent = load_settings(repo).agents["reviewer"]
    assert (agent.model, agent.output, agent.max_output_tokens) == ("codestral", "json", 900)
    assert agent.fallbacks == ["sonnet", "codestral"]

    removed = cli("agents", "remove", "reviewer")
    assert removed.exit_code == 0, removed.output
    assert "Removed agent 'reviewer'" in removed.output
    assert config.read_text() == USER_FILE
    assert "reviewer" not in load_settings(repo).agents


def test_invalid_agent_leaves_the_file_byte_identical(repo: Path, aether: AetherRun) -> None:
    config = repo / "aetherflow.toml"
    config.write_bytes(USER_FILE.encode())

    result = aether("agents", "add", "reviewer", "--role", "verifier", "--model", "no-such-model")

    assert result.returncode == 2
    assert "agents.reviewer.model" in result.stderr
    assert "no-such-model" in result.stderr
    assert str(config) in result.stderr
    assert config.read_bytes() == USER_FILE.encode()
    assert not list(repo.glob(".aetherflow.toml.*"))


def test_invalid_tool_names_the_key_and_keeps_the_file(repo: Path, aether: AetherRun) -> None:
    result = aether("agents", "edit", "coder", "--tool", "format_disk")

    assert result.returncode == 2
    assert "agents.coder.tools.0" in result.stderr
    assert "format_disk" in result.stderr
    assert not (repo / "aetherflow.toml").exists()


def test_editing_a_built_in_agent_writes_only_the_changed_keys(repo: Path, cli: CliInvoke) -> None:
    result = cli("agents", "edit", "editor", "--model", "mistral-small", "--no-fallbacks")

    assert result.exit_code == 0, result.output
    data = tomllib.loads((repo / "aetherflow.toml").read_text())
    assert data == {"agents": {"editor": {"model": "mistral-small", "fallbacks": []}}}
    editor = load_settings(repo).agents["editor"]
    assert editor.role == "editor"
    assert editor.fallbacks == []


def test_removing_a_built_in_agent_disables_it(repo: Path, cli: CliInvoke) -> None:
    result = cli("agents", "remove", "orchestrator")

    assert result.exit_code == 0, result.output
    assert "enabled = false" in result.output
    assert "built-in" in result.output
    assert tomllib.loads((repo / "aetherflow.toml").read_text()) == {"agents": {"orchestrator": {"enabled": False}}}
    assert load_settings(repo).agents["orchestrator"].enabled is False


def test_removing_an_agent_named_by_a_routing_rule_is_refused(repo: Path, cli: CliInvoke) -> None:
    result = cli("agents", "remove", "coder")

    assert isinstance(result.exception, UsageError)
    assert "module_generation (primary)" in result.exception.message
    assert "local_refactor (secondary)" in result.exception.message
    assert not (repo / "aetherflow.toml").exists()


def test_add_refuses_an_existing_name_and_edit_an_unknown_one(repo: Path, cli: CliInvoke) -> None:
    duplicate = cli("agents", "add", "coder", "--role", "coder", "--model", "deepseek")
    unknown = cli("agents", "edit", "ghost", "--model", "deepseek")
    nothing = cli("agents", "edit", "coder")

    assert isinstance(duplicate.exception, UsageError) and "already exists" in duplicate.exception.message
    assert isinstance(unknown.exception, UsageError) and "no agent named 'ghost'" in unknown.exception.message
    assert isinstance(nothing.exception, UsageError) and "Nothing to change" in nothing.exception.message
    assert not (repo / "aetherflow.toml").exists()


def test_list_and_show_report_sources(repo: Path, cli: CliInvoke) -> None:
    assert cli("agents", "add", "scribe", "--role", "documentation", "--model", "gemini-flash").exit_code == 0

    listed = cli("agents", "list", "--json")
    shown = cli("agents", "show", "coder", "--json")
    table = cli("agents", "list")

    assert listed.exit_code == 0, listed.output
    by_name = {entry["name"]: entry for entry in json.loads(listed.output)}
    assert by_name["scribe"]["sources"] == ["aetherflow.toml"]
    assert by_name["coder"]["sources"] == ["built-in"]
    coder = json.loads(shown.output)
    assert coder["model"] == "deepseek"
    assert "module_generation (primary)" in coder["routing_rules"]
    assert "scribe" in table.output and "aetherflow.toml" in table.output and "gemini-flash" in table.output


def test_agents_commands_outside_a_repository_explain_what_to_do(tmp_path: Path, aether: AetherRun) -> None:
    result = aether("agents", "add", "x", "--role", "coder", "--model", "deepseek", cwd=tmp_path)

    assert result.returncode == 2
    assert "not inside a git repository" in result.stderr
