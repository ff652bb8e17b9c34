"""`aether trust [--revoke]`: honour (or stop honouring) the repository's aetherflow.toml in full.

Until then, a repository's file cannot point models at other hosts, add check commands, relax privacy or raise
the budget (see aetherflow/config/trust.py); every command says which keys it ignored.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.markup import escape

from aetherflow import paths
from aetherflow.cli import app
from aetherflow.cli._output import console, require_repo_root
from aetherflow.errors import UsageError

_MAX_SHOWN_VALUE = 100


def _value_at(data: dict[str, Any], dotted: str) -> Any:
    node: Any = data
    for key in dotted.split("."):
        node = node.get(key) if isinstance(node, dict) else None
    return node


def _shown(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= _MAX_SHOWN_VALUE else text[: _MAX_SHOWN_VALUE - 1] + "…"


@app.command("trust")
def trust(
    revoke: Annotated[bool, typer.Option("--revoke", help="Stop honouring the file's sensitive settings.")] = False,
) -> None:
    """Honour this repository's aetherflow.toml in full: model endpoints, check commands, budget, privacy.

    Trust is bound to the file's content: after any change, its sensitive settings are ignored again until you
    run `aether trust` once more.
    """
    from aetherflow.config.loader import load_settings, read_toml
    from aetherflow.config.trust import config_digest, revoke_trust, trust_repository

    repo_root = require_repo_root()
    config = repo_root / paths.REPO_CONFIG_NAME
    out = console()
    if revoke:
        was = revoke_trust(repo_root)
        out.print(("Revoked trust in " if was else "Was not trusted: ") + escape(str(config)))
        return
    if config_digest(config) is None:
        raise UsageError(
            f"{config} does not exist, so there is nothing to trust.",
            "Run `aether init` to write one (it is trusted as written), or create it by hand and run `aether trust`.",
        )
    before = load_settings(repo_root).repo_trust
    if before is not None and before.state == "trusted":
        out.print(f"Already trusted: {escape(str(config))}")
        return
    data = read_toml(config)
    digest = trust_repository(repo_root)
    if before is not None and before.ignored:
        out.print("Now honoured from this file:")
        for key in before.ignored:
            out.print(f"  {escape(key)} = {escape(_shown(_value_at(data, key)))}")
    out.print(f"[green]✓[/] Trusted {escape(str(config))} (sha256 {digest[:12]}).")
    out.print("A change to the file needs `aether trust` again; `aether trust --revoke` undoes this.")
