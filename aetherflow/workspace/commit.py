"""`--commit`: commit exactly what an apply wrote, and refuse up front when that would sweep in the user's work.

The files on disk after an apply hold the user's own uncommitted edits plus the accepted hunks, so committing a
file the user had changed would put their unfinished work into AetherFlow's commit (and replace what they had
staged). Such a commit is refused before anything is written; the run stays available to apply without it.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from aetherflow.errors import AetherError, ApplyConflictError
from aetherflow.workspace._git import git_env, run_git
from aetherflow.workspace.apply import AppliedRecord


def user_changed_files(repo_root: Path, files: list[str]) -> list[str]:
    """Of `files`, those with the user's own changes against HEAD: staged, unstaged, or untracked."""
    if not files:
        return []
    out = run_git(repo_root, "status", "--porcelain=v1", "-z", "--untracked-files=all", "--", *files).decode()
    changed = []
    entries = iter(out.split("\0"))
    for entry in entries:
        if not entry:
            continue
        if entry[0] in "RC":  # a rename's or copy's source path follows as its own entry
            next(entries, None)
        changed.append(entry[3:])
    return sorted(set(changed) & set(files))


def refuse_commit_over_user_changes(repo_root: Path, files: list[str], run_id: str) -> None:
    """Raise, before anything is applied, when committing `files` would also commit the user's own changes."""
    mixed = user_changed_files(repo_root, files)
    if mixed:
        raise ApplyConflictError(
            f"--commit would also commit your own uncommitted changes in: {', '.join(mixed)}. Nothing was applied.",
            f"Commit or stash your changes first, or apply without committing: `aether runs apply {run_id}`.",
        )


def commit_applied(repo_root: Path, record: AppliedRecord, message: str) -> str:
    """Stage exactly the applied files and commit only them (the user's hooks run); return the new commit's sha.

    Other staged changes of the user stay staged and out of this commit (`git commit --only`).
    """
    repo_root = repo_root.resolve()
    run_git(repo_root, "add", "-A", "--", *record.files)
    failure = _git_commit(repo_root, message, record.files)
    if failure is not None:
        raise AetherError(
            f"The change was applied but the commit failed: {failure}",
            "Your files are changed and staged; fix the cause (often a pre-commit hook) and commit yourself.",
        )
    return run_git(repo_root, "rev-parse", "HEAD").decode().strip()


def _git_commit(repo_root: Path, message: str, files: list[str]) -> str | None:
    """Run `git commit --only`; return its error text, or None on success."""
    proc = subprocess.run(
        ["git", "commit", "--quiet", "-m", message, "--only", "--", *files],
        cwd=repo_root, env=git_env(), capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False,
    )  # fmt: skip
    if proc.returncode == 0:
        return None
    return (proc.stderr or proc.stdout).strip() or f"git commit exited with {proc.returncode}"
