"""Trust for a repository's `aetherflow.toml`: a cloned repository must not be able to redirect the user's keys.

A repository's file can name where requests go (`models.*.api_base`, `key_env`), which commands agents may run
(`checks.commands`), how much may be spent, and what may leave the machine. Until the user has trusted the file
(`aether trust`, which records the repository and the file's SHA-256 in the user data folder), only keys that
cannot hurt the user are honoured: index ignore patterns and size limits, and settings that only tighten (a lower
budget, `privacy.local_only = true`, `privacy.redact_secrets = true`). Any change to the file lapses the trust,
as with direnv: the user reviews the new content and trusts it again.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from aetherflow import paths

TrustState = Literal["trusted", "untrusted", "changed", "absent"]
TRUST_FILE_NAME = "trusted-repos.json"

KeyPath = tuple[str, ...]


@dataclass
class RepoTrust:
    """What the loader did with the repository's file: its trust state and the keys it ignored."""

    path: Path
    state: TrustState
    ignored: list[str] = field(default_factory=list)

    @property
    def reason(self) -> str:
        """Why the file is not honoured in full: 'is not trusted' or 'has changed since you trusted it'."""
        return "has changed since you trusted it" if self.state == "changed" else "is not trusted"

    def notice(self) -> str | None:
        """One warning for the user when keys were ignored, naming the next step; None when nothing was."""
        if not self.ignored:
            return None
        shown = ", ".join(self.ignored[:6]) + (f" and {len(self.ignored) - 6} more" if len(self.ignored) > 6 else "")
        return (
            f"{self.path} {self.reason}; its settings that could send your code or keys elsewhere, run commands or "
            f"raise spending were ignored: {shown}. Review the file, then run `aether trust` to honour it."
        )


def trust_file() -> Path:
    """The user's record of trusted repositories (absolute work tree path -> SHA-256 of its aetherflow.toml)."""
    return paths.user_data_dir() / TRUST_FILE_NAME


def _repo_key(repo_root: Path) -> str:
    return os.path.realpath(repo_root)


def config_digest(config_path: Path) -> str | None:
    """SHA-256 of the file's bytes, or None when it does not exist."""
    try:
        return hashlib.sha256(config_path.read_bytes()).hexdigest()
    except FileNotFoundError:
        return None


def _load_records() -> dict[str, Any]:
    try:
        data = json.loads(trust_file().read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        # An unreadable record trusts nothing: the safe reading of a damaged file.
        return {}
    return data if isinstance(data, dict) else {}


def _save_records(records: Mapping[str, Any]) -> None:
    target = trust_file()
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=".trusted-", dir=target.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(records, out, indent=2, sort_keys=True)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def trust_state(repo_root: Path, config_path: Path) -> TrustState:
    """Whether `config_path` (the repository's aetherflow.toml) is trusted as it is now."""
    digest = config_digest(config_path)
    if digest is None:
        return "absent"
    record = _load_records().get(_repo_key(repo_root))
    if not isinstance(record, dict):
        return "untrusted"
    return "trusted" if record.get("sha256") == digest else "changed"


def trust_repository(repo_root: Path, config_path: Path | None = None) -> str:
    """Trust the repository's aetherflow.toml as it is now; returns its SHA-256. The file must exist."""
    config_path = config_path or repo_root / paths.REPO_CONFIG_NAME
    digest = config_digest(config_path)
    if digest is None:
        raise FileNotFoundError(config_path)
    records = _load_records()
    records[_repo_key(repo_root)] = {"sha256": digest, "trusted_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    _save_records(records)
    return digest


def revoke_trust(repo_root: Path) -> bool:
    """Forget the repository; True when it was trusted (in any version of its file)."""
    records = _load_records()
    if records.pop(_repo_key(repo_root), None) is None:
        return False
    _save_records(records)
    return True


def _lower_or_new(value: Any, lower: Any) -> bool:
    # A limit is honoured when it tightens: the lower layers set none, or a higher one.
    return isinstance(value, int | float) and not isinstance(value, bool) and (lower is None or value <= lower)


# Keys an untrusted file may set, with the condition its value must meet (given the value below it).
_HONOURED: dict[KeyPath, Callable[[Any, Any], bool]] = {
    ("index", "ignore"): lambda value, lower: True,
    ("index", "max_file_bytes"): lambda value, lower: True,
    ("privacy", "local_only"): lambda value, lower: value is True,
    ("privacy", "redact_secrets"): lambda value, lower: value is True,
    ("budget", "per_run_usd"): _lower_or_new,
    ("budget", "per_day_usd"): _lower_or_new,
}


def _lookup(data: Mapping[str, Any], path: KeyPath) -> Any:
    node: Any = data
    for key in path:
        if not isinstance(node, Mapping) or key not in node:
            return None
        node = node[key]
    return node


def filter_untrusted(data: Mapping[str, Any], lower: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Split an untrusted file's content into what is honoured and the dotted keys that are ignored.

    `lower` is the configuration merged from the layers below the repository's (defaults and user file).
    """
    kept: dict[str, Any] = {}
    ignored: list[str] = []

    def walk(node: Mapping[str, Any], prefix: KeyPath) -> None:
        for key, value in node.items():
            path = (*prefix, str(key))
            check = _HONOURED.get(path)
            if check is not None:
                if check(value, _lookup(lower, path)):
                    target = kept
                    for part in path[:-1]:
                        target = target.setdefault(part, {})
                    target[path[-1]] = value
                else:
                    ignored.append(".".join(path))
            elif isinstance(value, Mapping) and value:
                walk(value, path)
            else:
                ignored.append(".".join(path))

    walk(data, ())
    return kept, ignored
