"""Which models a call may try, in which order, with which parameters: pure functions of the settings.

The chain is the request's alias, or the agent's model followed by its fallbacks. A remote model without its key
is replaced by the local model (gateway.missing_key = "local") or dropped with a reason; privacy.local_only
keeps remote models out entirely. Dynamic state (circuit breakers, budget) is applied later, per attempt.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from aetherflow.config.models import ModelConfig, Settings
from aetherflow.errors import ConfigError, ModelUnavailableError, UsageError
from aetherflow.llm.types import CallRequest

DEFAULT_MAX_TOKENS = 4096
LOCAL_INSTALL_HINT = "pip install 'aetherflow[local]'"
# Whether an in-process (embedded) catalogue entry can run here: llama-cpp installed and its file present.
LocalOk = Callable[[ModelConfig], bool]


@dataclass(frozen=True)
class CallPlan:
    """The resolved chain and parameters of one call."""

    chain: list[str]
    temperature: float | None
    max_tokens: int
    agent: str | None
    # (alias, reason) for every configured alias left out of the chain.
    skipped: list[tuple[str, str]] = field(default_factory=list)


def model_config(settings: Settings, alias: str) -> ModelConfig:
    """The catalogue entry for `alias`, or a ConfigError listing the known aliases."""
    model = settings.models.get(alias)
    if model is None:
        raise ConfigError(
            f"Model alias '{alias}' is not in the model catalogue (known: {', '.join(sorted(settings.models))}).",
            f"Use one of the known aliases, or add [models.{alias}] to aetherflow.toml.",
        )
    return model


def key_missing(model: ModelConfig, environ: Mapping[str, str]) -> bool:
    """A remote model whose key variable is configured but empty or unset in `environ`."""
    return not model.local and model.key_env is not None and not environ.get(model.key_env)


def requested_aliases(settings: Settings, request: CallRequest) -> list[str]:
    """The aliases named by the request before availability is applied: its alias, or the agent's chain."""
    if request.alias is not None:
        model_config(settings, request.alias)
        return [request.alias]
    if request.agent is None:
        raise UsageError(
            "A model call named neither a model alias nor an agent.",
            "Pass alias= (a key of [models]) or agent= (a key of [agents]) in the CallRequest.",
        )
    agent = settings.agents.get(request.agent)
    if agent is None:
        raise ConfigError(
            f"Agent '{request.agent}' is not configured (known: {', '.join(sorted(settings.agents))}).",
            "Run `aether agents list`, or add it with `aether agents add`.",
        )
    return [agent.model, *agent.fallbacks]


def _substitute(
    settings: Settings, alias: str, environ: Mapping[str, str], local_ok: LocalOk
) -> tuple[list[str], str]:
    """The aliases to try in place of `alias` (itself, the local cascade, or none) and why when it changed."""
    model = model_config(settings, alias)
    local = [a for a in settings.gateway.local_aliases if _runs_here(settings.models.get(a), local_ok)]
    named = ", ".join(local)
    if model.local:
        if _runs_here(model, local_ok):
            return [alias], ""
        return [], f"{alias}: local model not installed ({LOCAL_INSTALL_HINT})"
    if settings.privacy.local_only:
        if local:
            return local, f"{alias}: privacy.local_only forbids remote models; using {named}"
        return [], f"{alias}: privacy.local_only forbids remote models and no local model is installed"
    if not key_missing(model, environ):
        return [alias], ""
    reason = f"{alias}: key {model.key_env} missing"
    if settings.gateway.missing_key == "local" and local:
        return local, f"{reason}; using {named}"
    return [], reason


def _runs_here(model: ModelConfig | None, local_ok: LocalOk) -> bool:
    """A local model that can run: a server on this machine, or an in-process model whose file llama-cpp can run."""
    return model is not None and model.local and (not model.embedded or local_ok(model))


def plan_call(
    settings: Settings, request: CallRequest, environ: Mapping[str, str], local_ok: LocalOk
) -> CallPlan:
    """Resolve the chain (deduplicated, order kept) and the temperature and output limit that apply.

    `local_ok(model)` says whether an in-process model can run; it is asked only when the answer matters.
    """
    chain: list[str] = []
    skipped: list[tuple[str, str]] = []
    for alias in requested_aliases(settings, request):
        chosen, reason = _substitute(settings, alias, environ, local_ok)
        if reason:
            skipped.append((alias, reason))
        chain += [a for a in chosen if a not in chain]
    agent = settings.agents.get(request.agent) if request.agent else None
    temperature = request.temperature if request.temperature is not None else (agent.temperature if agent else None)
    max_tokens = request.max_tokens or (agent.max_output_tokens if agent else DEFAULT_MAX_TOKENS)
    return CallPlan(chain, temperature, max_tokens, request.agent, skipped)


def unavailable_error(settings: Settings, plan: CallPlan, request: CallRequest) -> ModelUnavailableError:
    """The error for an empty chain: which key variables to set, or what to install."""
    target = f"agent '{request.agent}'" if request.alias is None else f"model '{request.alias}'"
    keys = sorted({m.key_env for a, _ in plan.skipped if (m := settings.models[a]).key_env and not m.local})
    reasons = "; ".join(reason for _, reason in plan.skipped) or "no model configured"
    if settings.privacy.local_only:
        hint = f"privacy.local_only is on: install the local model ({LOCAL_INSTALL_HINT}) or turn local_only off."
    elif keys:
        hint = f"Set {' or '.join(keys)} in your environment, or {LOCAL_INSTALL_HINT} to use the built-in model."
    else:
        hint = f"{LOCAL_INSTALL_HINT}, or configure a model you have a key for (`aether models`)."
    return ModelUnavailableError(f"No model can serve {target}: {reasons}.", hint)


def provider_failure_hint(settings: Settings) -> str:
    """The next step after every model of a chain failed. Under privacy.local_only the chain held only the local
    model, and the user must learn that no remote model was tried on purpose, not be told to add one."""
    if settings.privacy.local_only:
        return ("privacy.local_only is on, so no remote model was tried: check the local model (`aether doctor`), "
                "or turn local_only off to allow remote models.")
    return ("Check the provider's status and your key (`aether doctor --ping`), or add a fallback model to the agent "
            "in aetherflow.toml.")
