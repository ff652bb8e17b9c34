"""Configuration layering (one test per boundary) and the messages a broken configuration gets."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_support import AetherRun, write_trusted_config

from aetherflow import paths
from aetherflow.config.loader import DEFAULTS_FILE, load_settings
from aetherflow.errors import ConfigError


def _user_file(text: str) -> Path:
    path = paths.user_config_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_user_file_overrides_defaults(repo: Path, aether_home: Path) -> None:
    assert load_settings(repo, environ={}).budget.per_run_usd == 2.0
    user = _user_file("[budget]\nper_run_usd = 5.0\n")

    settings = load_settings(repo, environ={})

    assert user == aether_home / "config" / "config.toml"
    assert settings.budget.per_run_usd == 5.0
    assert settings.budget.per_day_usd == 10.0  # untouched keys keep the default
    assert settings.sources[:2] == [str(DEFAULTS_FILE), str(user)]


def test_repo_file_overrides_user_file(repo: Path) -> None:
    _user_file("[budget]\nper_run_usd = 5.0\nper_day_usd = 20.0\n")
    write_trusted_config(repo, "[budget]\nper_run_usd = 3.0\n")

    settings = load_settings(repo, environ={})

    assert (settings.budget.per_run_usd, settings.budget.per_day_usd) == (3.0, 20.0)


def test_environment_overrides_repo_file(repo: Path) -> None:
    write_trusted_config(repo, "[budget]\nper_run_usd = 3.0\n[privacy]\nlocal_only = false\n")

    settings = load_settings(repo, environ={"AETHER_BUDGET__PER_RUN_USD": "4.5", "AETHER_PRIVACY__LOCAL_ONLY": "true"})

    assert settings.budget.per_run_usd == 4.5
    assert settings.privacy.local_only is True


def test_flags_override_environment(repo: Path) -> None:
    settings = load_settings(
        repo, flags={"budget": {"per_run_usd": 7.0}}, environ={"AETHER_BUDGET__PER_RUN_USD": "4.5"}
    )

    assert settings.budget.per_run_usd == 7.0
    assert settings.sources[-1] == "command line"


def test_environment_layer_reaches_the_cli(repo: Path, aether: AetherRun) -> None:
    write_trusted_config(repo, "[models.deepseek]\ncontext_window = 1000\n")

    result = aether("models", "--json", env={"AETHER_MODELS__DEEPSEEK__CONTEXT_WINDOW": "2000"})

    assert result.returncode == 0, result.stderr
    assert '"context_window": 2000' in result.stdout


def test_broken_toml_names_the_file_and_line(repo: Path, aether: AetherRun) -> None:
    config = repo / "aetherflow.toml"
    write_trusted_config(repo, "[budget]\nper_run_usd = 1.0\nper_day_usd = = 3\n")

    result = aether("models")

    assert result.returncode == 2
    assert str(config) in result.stderr
    assert "line 3" in result.stderr


def test_wrong_type_names_file_key_found_and_expected(repo: Path, aether: AetherRun) -> None:
    config = repo / "aetherflow.toml"
    write_trusted_config(repo, '[budget]\nper_run_usd = "lots"\n')

    result = aether("agents", "list")

    assert result.returncode == 2
    assert str(config) in result.stderr
    assert "budget.per_run_usd" in result.stderr
    assert "'lots'" in result.stderr
    assert "valid number" in result.stderr


def test_unknown_key_lists_the_expected_ones(repo: Path) -> None:
    write_trusted_config(repo, "[privacy]\nredact = false\n")

    with pytest.raises(ConfigError) as raised:
        load_settings(repo, environ={})

    assert "privacy.redact" in raised.value.message
    assert "local_only, redact_secrets" in raised.value.message


def test_broken_reference_names_the_file_that_set_it(repo: Path) -> None:
    user = _user_file('[agents.coder]\nmodel = "gpt-9"\n')

    with pytest.raises(ConfigError) as raised:
        load_settings(repo, environ={})

    assert f"{user}: key `agents.coder.model`" in raised.value.message
    assert "'gpt-9'" in raised.value.message


def test_repo_config_override_validates_content_not_yet_written(repo: Path) -> None:
    write_trusted_config(repo, "[budget]\nper_run_usd = 3.0\n")

    settings = load_settings(repo, environ={}, repo_config={"budget": {"per_run_usd": 9.0}})

    assert settings.budget.per_run_usd == 9.0
    assert str(repo / "aetherflow.toml") in settings.sources
