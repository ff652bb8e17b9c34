"""Layer the configuration sources and validate them into one Settings.

Order, lowest first: built-in defaults < user config file < the repository's `aetherflow.toml` < `AETHER_*`
environment variables < command-line flags. Tables merge key by key; any other value (lists included) replaces.
Every leaf remembers which layer set it, so a validation error names the file and key to fix.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args, get_origin

from pydantic import BaseModel, ValidationError

from aetherflow import paths
from aetherflow.config.models import Settings
from aetherflow.config.trust import RepoTrust, filter_untrusted, trust_state
from aetherflow.errors import ConfigError

DEFAULTS_FILE = Path(__file__).with_name("defaults.toml")
ENV_PREFIX = "AETHER_"
ENV_NESTING = "__"

KeyPath = tuple[str, ...]


@dataclass
class Layer:
    """One configuration source: a name for messages (a path, 'environment', 'command line') and its data."""

    name: str
    data: dict[str, Any]
    # Set on the repository's layer: its trust state and the keys left out because the file is not trusted.
    trust: RepoTrust | None = None


@dataclass
class _Merged:
    data: dict[str, Any] = field(default_factory=dict)
    origin: dict[KeyPath, str] = field(default_factory=dict)


def read_toml(path: Path) -> dict[str, Any]:
    """Parse a TOML file, turning syntax errors into a ConfigError that names the file and line."""
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"{path} is not valid TOML: {exc}",
            "Fix the syntax at that line (see aetherflow.toml.example for the format).",
        ) from exc
    except OSError as exc:
        raise ConfigError(f"Cannot read {path}: {exc.strerror}", "Check the file's permissions.") from exc


def _parse_env_value(raw: str) -> Any:
    """Read an environment value as a TOML literal (number, bool, array, quoted string), else as plain text."""
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def env_layer(environ: Mapping[str, str]) -> Layer:
    """Config overrides from variables like `AETHER_BUDGET__PER_RUN_USD=1.5` (a double underscore nests).

    Variables without a double underscore (`AETHER_HOME`, `AETHER_SKIP`) are not configuration keys.
    """
    data: dict[str, Any] = {}
    for name, raw in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX) or ENV_NESTING not in name:
            continue
        keys = [part.lower() for part in name[len(ENV_PREFIX) :].split(ENV_NESTING)]
        target = data
        for key in keys[:-1]:
            target = target.setdefault(key, {})
        target[keys[-1]] = _parse_env_value(raw)
    return Layer("environment (AETHER_* variables)", data)


def _merge(into: _Merged, layer: Layer) -> None:
    def walk(dst: dict[str, Any], src: Mapping[str, Any], prefix: KeyPath) -> None:
        for key, value in src.items():
            path = (*prefix, key)
            if isinstance(value, Mapping) and isinstance(dst.get(key), dict):
                walk(dst[key], value, path)
            else:
                dst[key] = _deep_copy(value)
                for stale in [p for p in into.origin if p[: len(path)] == path]:
                    del into.origin[stale]
            into.origin[path] = layer.name

    walk(into.data, layer.data, ())


def _deep_copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_copy(v) for v in value]
    return value


def _origin_of(loc: KeyPath, origin: dict[KeyPath, str]) -> str:
    for end in range(len(loc), 0, -1):
        if loc[:end] in origin:
            return origin[loc[:end]]
    return "the combined configuration"


def _allowed_keys(loc: KeyPath) -> list[str]:
    """The keys the model accepts in the table that holds `loc[-1]` (for 'unknown key' messages)."""
    annotation: Any = Settings
    for part in loc[:-1]:
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            field_info = annotation.model_fields.get(part)
            if field_info is None:
                return []
            annotation = field_info.annotation
        elif get_origin(annotation) is dict:
            annotation = get_args(annotation)[1]
        elif get_origin(annotation) is list and part.isdigit():
            annotation = get_args(annotation)[0]
        else:
            return []
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return sorted(annotation.model_fields)
    return []


# A whole-model check (a reference between tables) names the key it is about at the start of its message.
_KEYED_MESSAGE = re.compile(r"^(?:Value error, )?`([\w.\-]+)`: (.*)$", re.DOTALL)


def _describe(exc: ValidationError, origin: dict[KeyPath, str]) -> str:
    lines = []
    for error in exc.errors():
        loc = tuple(str(part) for part in error["loc"])
        keyed = _KEYED_MESSAGE.match(error["msg"]) if error["type"] == "value_error" else None
        if keyed:
            loc = (*loc, *keyed.group(1).split("."))
        key = ".".join(loc) or "(top level)"
        source = _origin_of(loc, origin)
        if keyed:
            detail = keyed.group(2)
        elif error["type"] == "extra_forbidden":
            allowed = _allowed_keys(loc)
            detail = "unknown key" + (f"; expected one of: {', '.join(allowed)}" if allowed else "")
        elif error["type"] == "missing":
            detail = "required key is missing"
        else:
            detail = f"{error['msg']} (found {error['input']!r})" if loc else error["msg"]
        lines.append(f"{source}: key `{key}`: {detail}")
    return "\n".join(lines)


def repo_config_file(repo_root: Path) -> Path:
    """The repository's configuration file."""
    return repo_root / paths.REPO_CONFIG_NAME


def collect_layers(
    repo_root: Path | None,
    flags: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    repo_config: Mapping[str, Any] | None = None,
) -> list[Layer]:
    """The layers that apply here, lowest priority first; missing files are simply absent.

    The repository's file is honoured in full only when the user trusts it (see `trust.py`); otherwise its
    sensitive keys are left out and listed in the layer's `trust`. `repo_config`, when given, stands in for the
    content of the repository's `aetherflow.toml` (an edit the user is making through AetherFlow, not yet written),
    so a change can be validated in its full context before it touches the file.
    """
    layers = [Layer(str(DEFAULTS_FILE), read_toml(DEFAULTS_FILE))]
    user_file = paths.user_config_file()
    if user_file.is_file():
        layers.append(Layer(str(user_file), read_toml(user_file)))
    if repo_root is not None:
        repo_file = repo_config_file(repo_root)
        if repo_config is not None:
            layers.append(Layer(str(repo_file), dict(repo_config)))
        elif repo_file.is_file():
            layers.append(_repo_layer(repo_root, repo_file, layers))
    layers.append(env_layer(os.environ if environ is None else environ))
    if flags:
        layers.append(Layer("command line", dict(flags)))
    return layers


def _repo_layer(repo_root: Path, repo_file: Path, below: list[Layer]) -> Layer:
    data = read_toml(repo_file)
    state = trust_state(repo_root, repo_file)
    if state == "trusted":
        return Layer(str(repo_file), data, RepoTrust(repo_file, state))
    lower = _Merged()
    for layer in below:
        _merge(lower, layer)
    kept, ignored = filter_untrusted(data, lower.data)
    return Layer(str(repo_file), kept, RepoTrust(repo_file, state, ignored))


def load_settings(
    repo_root: Path | None = None,
    flags: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    repo_config: Mapping[str, Any] | None = None,
) -> Settings:
    """Build the Settings for `repo_root` (None outside a repository). Raises ConfigError naming file and key.

    `repo_config` replaces the repository file's content (see `collect_layers`).
    """
    layers = collect_layers(repo_root, flags, environ, repo_config)
    merged = _Merged()
    for layer in layers:
        _merge(merged, layer)
    try:
        settings = Settings.model_validate(merged.data)
    except ValidationError as exc:
        raise ConfigError(
            "Invalid configuration:\n" + _describe(exc, merged.origin),
            "Fix the key named above (every key is documented in aetherflow.toml.example), then run `aether doctor`.",
        ) from exc
    settings._sources = [layer.name for layer in layers]
    settings._repo_trust = next((layer.trust for layer in layers if layer.trust is not None), None)
    return settings
