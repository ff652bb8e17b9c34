"""Install, remove and inspect AetherFlow's git hooks, for any hook name (post-commit now, pre-commit later).

Rules this module keeps:
- The hooks folder is whatever git uses (`git rev-parse --git-path hooks`), so `core.hooksPath` is honoured.
- A hook that is not ours is never overwritten: it is moved aside to `<name>.aetherflow-chained`, our script
  runs it first (with the same arguments, stdin and exit status semantics), and uninstall puts it back.
- Installing twice changes nothing but the script's text (for instance a new Python path).
- Our script calls the Python that installed it (`<python> -m aetherflow hook run <name>`), so it works when
  `aether` is not on the PATH git gives to hooks.
"""

from __future__ import annotations

import os
import shlex
import stat
import subprocess
import sys
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from aetherflow.errors import AetherError, NotARepositoryError

MARKER = "# aetherflow-hook"
CHAINED_SUFFIX = ".aetherflow-chained"

HookState = Literal["absent", "ours", "foreign"]

# Hooks whose script runs a module directly instead of `aetherflow hook run NAME`: the pre-commit review must
# not pay for importing the whole command line (it has 0.5 s in total when no model is available).
ENTRY_MODULES: dict[str, str] = {"pre-commit": "aetherflow.hooks.pre_commit"}
# Hooks that AETHER_SKIP=1 turns off in the script itself, before any Python starts (the chained hook still runs).
SKIPPABLE: frozenset[str] = frozenset({"pre-commit"})


class HookStatus(BaseModel):
    """What is installed for one hook name."""

    name: str
    path: Path
    state: HookState
    chained: Path | None = None
    """The user's previous hook, which our script runs first."""
    python: str | None = None
    """The interpreter our script calls (None when the hook is not ours)."""
    python_exists: bool = False

    def describe(self) -> str:
        if self.state == "absent":
            return f"{self.name}: not installed ({self.path})"
        if self.state == "foreign":
            return f"{self.name}: a hook that is not AetherFlow's is installed ({self.path}); left untouched"
        line = f"{self.name}: AetherFlow hook installed ({self.path})"
        if self.chained is not None:
            line += f", chaining your previous hook {self.chained.name}"
        if not self.python_exists:
            line += f"; its Python {self.python} no longer exists: run `aether hook install` again"
        return line


def hooks_dir(repo_root: Path) -> Path:
    """The folder git runs hooks from for this repository (honours core.hooksPath)."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--git-path", "hooks"],
            cwd=repo_root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError) as exc:
        raise NotARepositoryError(
            f"Cannot find the git hooks folder of {repo_root}: {exc}",
            "Run the command inside a git work tree.",
        ) from exc
    folder = Path(out).expanduser()
    return folder if folder.is_absolute() else (repo_root / folder).resolve()


def _script(name: str, python: str) -> str:
    chained = f'"$hook_dir/{name}{CHAINED_SUFFIX}"'
    py = shlex.quote(python)
    command = f"-m {ENTRY_MODULES[name]}" if name in ENTRY_MODULES else f"-m aetherflow hook run {name}"
    skip = 'if [ "$AETHER_SKIP" = 1 ]; then\n    exit 0\nfi\n' if name in SKIPPABLE else ""
    return f"""#!/bin/sh
{MARKER}: {name}
# Installed by `aether hook install`; `aether hook uninstall` removes it and restores any hook it chains.
hook_dir=$(dirname "$0")
if [ -x {chained} ]; then
    {chained} "$@" || exit $?
fi
{skip}if [ ! -x {py} ]; then
    echo "AetherFlow {name} hook skipped: {python} no longer exists (run: aether hook install)" >&2
    exit 0
fi
exec {py} {command} "$@"
"""


def _is_ours(path: Path) -> bool:
    try:
        head = path.read_text(encoding="utf-8", errors="replace")[:400]
    except OSError:
        return False
    return MARKER in head


def _python_of(path: Path) -> str | None:
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith("exec "):
            return shlex.split(line)[1]
    return None


def status(repo_root: Path, name: str) -> HookStatus:
    """Describe the hook `name`: absent, AetherFlow's (and what it chains), or someone else's."""
    path = hooks_dir(repo_root) / name
    chained = path.with_name(name + CHAINED_SUFFIX)
    if not path.exists() and not path.is_symlink():
        return HookStatus(name=name, path=path, state="absent")
    if not _is_ours(path):
        return HookStatus(name=name, path=path, state="foreign")
    python = _python_of(path)
    return HookStatus(
        name=name,
        path=path,
        state="ours",
        chained=chained if chained.exists() or chained.is_symlink() else None,
        python=python,
        python_exists=bool(python) and os.access(python or "", os.X_OK),
    )


def install(repo_root: Path, name: str, python: str | None = None) -> HookStatus:
    """Install our hook `name`, chaining (never overwriting) an existing one. Idempotent."""
    current = status(repo_root, name)
    chained = current.path.with_name(name + CHAINED_SUFFIX)
    if current.state == "foreign":
        if chained.exists() or chained.is_symlink():
            raise AetherError(
                f"Cannot install the {name} hook: {current.path} is not AetherFlow's and {chained.name} "
                "(a hook AetherFlow chained earlier) is also there, so moving it aside would lose one of them.",
                f"Merge or remove one of {current.path} and {chained}, then run `aether hook install` again.",
            )
        current.path.rename(chained)
    current.path.parent.mkdir(parents=True, exist_ok=True)
    _write_executable(current.path, _script(name, python or sys.executable))
    return status(repo_root, name)


def _write_executable(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".aetherflow-tmp")
    tmp.write_text(text, encoding="utf-8")
    mode = tmp.stat().st_mode
    tmp.chmod(mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    os.replace(tmp, path)


def uninstall(repo_root: Path, name: str) -> HookStatus:
    """Remove our hook `name` and restore the hook it chained. A hook that is not ours is left alone."""
    current = status(repo_root, name)
    if current.state != "ours":
        return current
    current.path.unlink()
    if current.chained is not None:
        current.chained.rename(current.path)
    return status(repo_root, name)
