"""Settings whose catalogue points at a ScriptedServer, built through the real configuration loader.

Two aliases reach the server through LiteLLM's `openai/` route: "fast" (cheap) and "strong" (dear). Every
default agent is remapped onto them so validation passes and no test reaches a real provider. The default
catalogue's other entries stay (tables merge, they cannot be removed by a layer) but no agent uses them, and
their key variables are absent from `scripted_environ()`. "local" is kept as the missing-key fallback.

Gateway timings are shortened (10 s timeout, 10-100 ms backoff) so a failing test fails fast; everything else
is the shipped default, the response cache included (it lives under AETHER_HOME, which tests point at a tmp dir).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from aetherflow.config.loader import load_settings
from aetherflow.config.models import Settings

SCRIPTED_KEY_ENV = "SCRIPTED_API_KEY"
SCRIPTED_KEY = "test-key"
FAST_PRICE = {"input": 1.0, "output": 2.0}
STRONG_PRICE = {"input": 3.0, "output": 15.0}
_CAPABILITIES = ["tools", "json_schema", "streaming"]

# Agent name -> (model alias, fallbacks). Planning-heavy roles start on the strong model, like the defaults.
AGENT_MODELS: dict[str, tuple[str, list[str]]] = {
    "orchestrator": ("strong", ["fast"]),
    "coder": ("fast", ["strong"]),
    "editor": ("fast", ["strong"]),
    "analyst": ("fast", ["strong"]),
    "prototyper": ("fast", ["strong"]),
    "verifier": ("fast", ["strong"]),
    "reasoner": ("strong", ["fast"]),
}


class _HasBaseUrl(Protocol):
    @property
    def base_url(self) -> str: ...


def scripted_environ(**extra: str) -> dict[str, str]:
    """The environment a gateway under test should see: only the scripted key (plus `extra`)."""
    return {SCRIPTED_KEY_ENV: SCRIPTED_KEY, **extra}


def scripted_flags(base_url: str) -> dict[str, Any]:
    """The configuration layer that points the catalogue and the agents at the server."""
    def model(name: str, price: dict[str, float]) -> dict[str, Any]:
        return {
            "model": f"openai/{name}",
            "api_base": base_url,
            "key_env": SCRIPTED_KEY_ENV,
            "price": dict(price),
            "context_window": 32000,
            "capabilities": list(_CAPABILITIES),
            "max_concurrency": 8,
        }

    return {
        "models": {"fast": model("fast", FAST_PRICE), "strong": model("strong", STRONG_PRICE)},
        "agents": {name: {"model": alias, "fallbacks": list(fallbacks)}
                   for name, (alias, fallbacks) in AGENT_MODELS.items()},
        "gateway": {"timeout_s": 10.0, "backoff_initial_s": 0.01, "backoff_max_s": 0.1},
    }


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """`base` with `override` laid over it: tables merge key by key, other values (lists too) replace."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def scripted_settings(server: _HasBaseUrl | str, **overrides: Any) -> Settings:
    """Settings for `server` (a ScriptedServer or its base URL), with `overrides` merged as flags.

    Example: `scripted_settings(server, budget={"per_run_usd": 0.01}, cache={"enabled": False})`.
    """
    base_url = server if isinstance(server, str) else server.base_url
    flags = deep_merge(scripted_flags(base_url), overrides)
    return load_settings(repo_root=None, flags=flags, environ=scripted_environ())
