"""`aether doctor`: check git, the repository, the configuration, keys, the local model and the index.

Each check reports ✓ (fine), ! (works, but something is worth doing), ✗ (broken) or - (skipped), with the next
step for anything not fine. `--ping` also makes one 1-token call per usable model, all at once. The command
exits 1 when any check is ✗, else 0.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Mapping
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
    from aetherflow.config.models import Settings


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


def check_keys(settings: Settings, environ: Mapping[str, str], local_ok: bool) -> list[Check]:
    """One check per key variable the catalogue names. A missing key is a warning: the model falls back."""
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
        falls_back = settings.gateway.missing_key == "local" and local_ok
        effect = "they fall back to the local model" if falls_back else "they are unavailable"
        checks.append(Check(
            f"key {variable}", "warn", f"missing (models: {models}); {effect}",
            f"export {variable}=... to use {models}.",
        ))
    return checks


def check_local() -> tuple[Check, bool]:
    """The embedded model that answers when no key is set."""
    from aetherflow.cli.models import local_model_status

    installed, detail = local_model_status()
    if installed:
        return Check("local model", "ok", detail), True
    return Check("local model", "warn", detail, "pip install 'aetherflow[local]'"), False


def check_usable(settings: Settings, environ: Mapping[str, str], local_ok: bool) -> Check:
    """At least one model must be able to answer, or every command that calls a model fails."""
    remote = [
        alias for alias, m in settings.models.items()
        if not m.local and (m.key_env is None or environ.get(m.key_env)) and not settings.privacy.local_only
    ]
    if remote or local_ok:
        usable = remote + (["local model"] if local_ok else [])
        return Check("usable models", "ok", ", ".join(usable))
    why = "privacy.local_only is on" if settings.privacy.local_only else "no provider key is set"
    return Check(
        "usable models", "fail", f"no model can answer: {why} and the local model is not installed",
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


def ping_targets(settings: Settings, environ: Mapping[str, str], local_ok: bool) -> tuple[list[str], list[Check]]:
    """The aliases worth pinging, and a skipped check for each of the others with the reason."""
    targets, skipped = [], []
    for alias, model in settings.models.items():
        if model.local:
            reason = None if local_ok or not model.embedded else "local model not installed"
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
        request = CallRequest(
            alias=alias, messages=[Message(role="user", content="ping")], max_tokens=1, stream=False,
            use_cache=False,
        )
        started = time.perf_counter()
        try:
            result = await gateway.complete(request)
        except AetherError as exc:
            return Check(f"ping {alias}", "fail", exc.message, exc.hint or "")
        took = time.perf_counter() - started
        via = f" via {result.alias}" if result.alias != alias else ""
        return Check(f"ping {alias}", "ok", f"{took * 1000:.0f} ms ({result.model_id}{via})")

    try:
        return list(await asyncio.gather(*(ping(alias) for alias in aliases)))
    finally:
        await gateway.aclose()


def run_checks(ping: bool, environ: Mapping[str, str]) -> list[Check]:
    """Every check, in report order."""
    repo_root = paths.find_repo_root()
    checks = [check_git(), check_repo(repo_root)]
    config_check, settings = check_config(repo_root, environ)
    local_check, local_ok = check_local()
    checks += [config_check, local_check]
    if settings is None:
        checks.append(Check("keys", "skip", "configuration is invalid"))
    else:
        checks += [
            check_trust(settings), *check_keys(settings, environ, local_ok), check_usable(settings, environ, local_ok),
        ]
    checks.append(check_index(repo_root))
    if ping and settings is not None:
        import asyncio

        targets, skipped = ping_targets(settings, environ, local_ok)
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
