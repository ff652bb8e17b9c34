"""aetherflow.toml.example: its active part validates, and it documents every key of Settings.

Commented-out TOML lines (`# key = value`, `# [table]`) are the optional keys and the examples; uncommenting all
of them must also give a valid configuration, and together with the active part they must name every field.
"""

from __future__ import annotations

import re
import tomllib
import types
from pathlib import Path
from typing import Any, Union, get_args, get_origin

from cli_support import PROJECT_ROOT, write_trusted_config
from pydantic import BaseModel

from aetherflow.config.loader import load_settings
from aetherflow.config.models import Settings

EXAMPLE = PROJECT_ROOT / "aetherflow.toml.example"
_COMMENTED_TOML = re.compile(r'^# ((\[\[?[\w.\-"]+\]\]?)|([\w\-"]+(\.[\w\-"]+)* = .*))$')


def _uncomment_all(text: str) -> str:
    return "\n".join(
        match.group(1) if (match := _COMMENTED_TOML.match(line)) else line for line in text.splitlines()
    )


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if get_origin(annotation) in (Union, types.UnionType):
        models = [m for m in map(_model_of, get_args(annotation)) if m is not None]
        return models[0] if models else None
    return None


def missing_paths(model: type[BaseModel], data: Any, prefix: str = "") -> set[str]:
    """Field paths of `model` that no value in `data` covers (dict entries and list items are searched)."""
    missing: set[str] = set()
    for name, info in model.model_fields.items():
        path = f"{prefix}{name}"
        present = [d[name] for d in _instances(data) if name in d]
        if not present:
            missing.add(path)
            continue
        annotation = info.annotation
        origin = get_origin(annotation)
        if origin is dict and _model_of(get_args(annotation)[1]):
            values = [v for p in present for v in p.values()]
            missing |= missing_paths(_model_of(get_args(annotation)[1]), values, f"{path}.*.")
        elif origin is list and _model_of(get_args(annotation)[0]):
            values = [v for p in present for v in p]
            missing |= missing_paths(_model_of(get_args(annotation)[0]), values, f"{path}[].")
        elif _model_of(annotation):
            missing |= missing_paths(_model_of(annotation), present, f"{path}.")
    return missing


def _instances(data: Any) -> list[dict[str, Any]]:
    return [d for d in (data if isinstance(data, list) else [data]) if isinstance(d, dict)]


def _load_as_repo_file(text: str, repo: Path) -> Settings:
    write_trusted_config(repo, text)
    return load_settings(repo, environ={})


def test_active_part_of_the_example_validates_and_changes_no_default(repo: Path) -> None:
    text = EXAMPLE.read_text()

    settings = _load_as_repo_file(text, repo)

    assert str(repo / "aetherflow.toml") in settings.sources
    defaults = load_settings(None, environ={})
    assert settings.model_dump() == defaults.model_dump()


def test_every_example_uncommented_still_validates(repo: Path) -> None:
    expanded = _uncomment_all(EXAMPLE.read_text())

    settings = _load_as_repo_file(expanded, repo)

    for alias in ("gpt-4o", "qwen-coder", "ollama-openai", "vllm-llama", "or-haiku", "team-coder"):
        assert alias in settings.models
    assert settings.models["team-coder"].api_base == "http://127.0.0.1:4000"
    assert settings.agents["doc-writer"].model == "gemini-flash"


def test_example_documents_every_settings_key() -> None:
    data = tomllib.loads(_uncomment_all(EXAMPLE.read_text()))

    assert missing_paths(Settings, data) == set()


def test_the_key_walk_notices_a_missing_key() -> None:
    data = tomllib.loads(_uncomment_all(EXAMPLE.read_text()))
    del data["gateway"]["breaker_failures"]
    del data["models"]["deepseek"]["price"]["cache_write"]

    assert missing_paths(Settings, data) == {"gateway.breaker_failures", "models.*.price.cache_write"}
