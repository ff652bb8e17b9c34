"""Shared pieces of the adversarial suite: the example repository with the user's own changes in it, a guard that
proves nothing of the user's was touched, and `aether` as a user runs it.

"Untouched" means: every file's bytes (outside .git and .aetherflow), `git status`, the staged content of the index
(`git ls-files --stage` and `git diff --cached`), HEAD, and every file of the folders beside the repository (a fake
home directory with a .bashrc and an ssh key) are what they were.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import aetherflow
from aetherflow.config.trust import trust_repository

PROJECT_ROOT = Path(aetherflow.__file__).resolve().parent.parent
DEMO_APP = PROJECT_ROOT / "examples" / "demo-app"

# The user's work in progress, present in every adversarial repository.
STAGED_FILE, STAGED_TEXT = "app/models.py", "\n# user: staged note\n"
UNSTAGED_FILE, UNSTAGED_TEXT = "app/auth.py", "\n# user: unstaged note\n"
UNTRACKED_FILE, UNTRACKED_TEXT = "notes/todo-list.md", "user's untracked notes\n"


def git(repo: Path, *args: str, check: bool = True) -> str:
    """Run git in `repo` and return its stdout."""
    return subprocess.run(["git", *args], cwd=repo, check=check, capture_output=True, text=True).stdout


def make_demo_repo(root: Path, *, user_changes: bool = True) -> Path:
    """A copy of examples/demo-app committed into a new git repository at `root`.

    With `user_changes`, the user also has a staged edit, an unstaged edit and an untracked file, which every
    adversarial test must find intact afterwards.
    """
    shutil.copytree(DEMO_APP, root)
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "demo app")
    if user_changes:
        with (root / STAGED_FILE).open("a") as out:
            out.write(STAGED_TEXT)
        git(root, "add", STAGED_FILE)
        with (root / UNSTAGED_FILE).open("a") as out:
            out.write(UNSTAGED_TEXT)
        (root / UNTRACKED_FILE).parent.mkdir(parents=True, exist_ok=True)
        (root / UNTRACKED_FILE).write_text(UNTRACKED_TEXT)
    return root


def trust(repo: Path) -> None:
    """Trust the repository's aetherflow.toml as it is now (what `aether trust` does), for tests that need it."""
    trust_repository(repo)


def files_under(folder: Path, skip: frozenset[str] = frozenset()) -> dict[str, bytes]:
    """Every regular file below `folder` (symlinks not followed) with its bytes, skipping top-level names in `skip`."""
    found: dict[str, bytes] = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if rel.parts[0] in skip or path.is_symlink() or not path.is_file():
            continue
        found[rel.as_posix()] = path.read_bytes()
    return found


@dataclass(frozen=True)
class Snapshot:
    """What the user has: work tree bytes, git status, the index's content, HEAD, and the folders around."""

    files: dict[str, bytes]
    status: str
    staged: str
    staged_diff: str
    head: str
    outside: dict[str, dict[str, bytes]]


def snapshot(repo: Path, outside: list[Path] | None = None) -> Snapshot:
    """Record the user's state of `repo` and of each folder in `outside` (files only, by bytes)."""
    return Snapshot(
        files=files_under(repo, frozenset({".git", ".aetherflow"})),
        status=git(repo, "status", "--porcelain=v1", "--untracked-files=all"),
        staged=git(repo, "ls-files", "--stage"),
        staged_diff=git(repo, "diff", "--cached", "--binary"),
        head=git(repo, "rev-parse", "HEAD").strip(),
        outside={str(folder): files_under(folder) for folder in (outside or [])},
    )


def assert_untouched(before: Snapshot, repo: Path, outside: list[Path] | None = None) -> None:
    """Fail, naming what differs, unless the user's state equals `before`."""
    after = snapshot(repo, outside)
    changed = sorted(
        set(before.files) ^ set(after.files)
        | {rel for rel in before.files.keys() & after.files.keys() if before.files[rel] != after.files[rel]}
    )
    assert not changed, f"user files changed: {changed}"
    assert after.status == before.status, f"git status changed:\n{before.status}\n---\n{after.status}"
    assert after.staged == before.staged, "the git index changed"
    assert after.staged_diff == before.staged_diff, "the staged diff changed"
    assert after.head == before.head, "HEAD moved"
    for folder, files in before.outside.items():
        assert after.outside[folder] == files, f"files outside the repository changed in {folder}"


def fake_home(root: Path) -> Path:
    """A stand-in home directory with the files an attacker would aim at."""
    (root / ".ssh").mkdir(parents=True)
    (root / ".bashrc").write_text("export PATH=$HOME/bin:$PATH\n")
    (root / ".ssh" / "id_rsa").write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nAAAAfakekeymaterial\n")
    return root


def run_aether(repo: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 180) -> (
    subprocess.CompletedProcess[str]
):
    """`python -m aetherflow ARGS` in `repo`, as a user runs it: real exit code, stdout and stderr."""
    environ = {**os.environ, "COLUMNS": "250", **(env or {})}
    environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), environ.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", "aetherflow", *args],
        cwd=repo, env=environ, capture_output=True, text=True, timeout=timeout,
    )
