"""Fixtures every test shares: an isolated home, the scripted server, and settings pointing at it."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from aetherflow.config.loader import DEFAULTS_FILE
from aetherflow.config.models import Settings
from aetherflow.testing.server import ScriptedServer
from aetherflow.testing.settings import scripted_environ, scripted_settings


def _default_key_variables() -> set[str]:
    """Every key variable the shipped defaults name (models and the index's api_key_env)."""
    data = tomllib.loads(DEFAULTS_FILE.read_text())
    names = {m["key_env"] for m in data.get("models", {}).values() if m.get("key_env")}
    if data.get("index", {}).get("api_key_env"):
        names.add(data["index"]["api_key_env"])
    return names


def pytest_addoption(parser: pytest.Parser) -> None:
    """`--chaos-runs N`: also run the full chaos count of issue 7 (tests/adversarial/test_chaos.py); CI passes 500."""
    parser.addoption("--chaos-runs", type=int, default=0, metavar="N",
                     help="run the full chaos test with N seeded runs (0, the default: only the quick 20)")
    parser.addoption("--chaos-seed-start", type=int, default=0, metavar="S", help="first seed of the full chaos run")


@pytest.fixture(autouse=True)
def aether_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point AETHER_HOME at a tmp dir and hide the developer's keys and AETHER_* overrides from every test.

    Any `*_API_KEY` variable goes too, not only the defaults' ones, so a real key can never reach a request.
    """
    home = tmp_path / "home"
    home.mkdir()
    hidden = _default_key_variables() | {
        name for name in os.environ if name.endswith("_API_KEY") or name.startswith("AETHER_")
    }
    for name in hidden:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AETHER_HOME", str(home))
    return home


@pytest.fixture
def scripted_server() -> Iterator[ScriptedServer]:
    """A started ScriptedServer, stopped (hanging handlers included) when the test ends."""
    with ScriptedServer() as server:
        yield server


@pytest.fixture
def scripted_env() -> dict[str, str]:
    """The environment mapping a gateway under test should read keys from: SCRIPTED_API_KEY=test-key."""
    return scripted_environ()


@pytest.fixture
def scripted_config(scripted_server: ScriptedServer) -> Settings:
    """Settings whose "fast" and "strong" aliases (and every agent) point at `scripted_server`."""
    return scripted_settings(scripted_server)
