"""The few git facts the index needs, read with the git command line (no GitPython import at start-up).

Every call runs with the repository root as working directory and without the `GIT_*` variables that a hook
inherits (`GIT_INDEX_FILE` may name a temporary index that is gone once the commit finishes).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from aetherflow.errors import NotARepositoryError, RepoIndexError, UsageError

_HOOK_VARIABLES = (
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_PREFIX",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_COMMON_DIR",
)

MODE_SYMLINK = "120000"
MODE_SUBMODULE = "160000"


def clean_env() -> dict[str, str]:
    """The environment minus the variables that would point git at another repository or index."""
    return {k: v for k, v in os.environ.items() if k not in _HOOK_VARIABLES}


def git(repo_root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
    """Run git in `repo_root` and return the completed process (stdout as bytes)."""
    try:
        return subprocess.run(
            ["git", *args], cwd=repo_root, capture_output=True, check=check, env=clean_env()
        )
    except FileNotFoundError as exc:
        raise UsageError("git is not installed or not on the PATH.", "Install git, then try again.") from exc
    except subprocess.CalledProcessError as exc:
        detail = exc.stderr.decode("utf-8", "replace").strip()
        raise RepoIndexError(f"git {' '.join(args)} failed in {repo_root}: {detail}", None) from exc


def check_work_tree(start: Path) -> Path:
    """Return the work tree root around `start`, or explain why there is none (not a repo, bare repo)."""
    probe = subprocess.run(
        ["git", "rev-parse", "--is-bare-repository", "--show-toplevel"],
        cwd=start,
        capture_output=True,
        text=True,
        env=clean_env(),
    )
    lines = probe.stdout.splitlines()
    if lines[:1] == ["true"]:
        raise UsageError(
            f"{start} is a bare git repository: it has no work tree to index.",
            "Clone it (`git clone <this folder> <new folder>`) and run the command inside the clone.",
        )
    if probe.returncode != 0 or len(lines) < 2:
        raise NotARepositoryError(
            f"{start} is not inside a git work tree.",
            "cd into your project (or run `git init` and commit your files), then run the command again.",
        )
    return Path(lines[1]).resolve()


def head_commit(repo_root: Path) -> str | None:
    """The commit HEAD points at, or None in a repository with no commits yet."""
    proc = git(repo_root, "rev-parse", "--verify", "--quiet", "HEAD^{commit}", check=False)
    out = proc.stdout.decode().strip()
    return out if proc.returncode == 0 and out else None


@dataclass(frozen=True)
class TreeEntry:
    """One entry of a commit's tree (or of the index): mode, object id, size in bytes (None for gitlinks)."""

    path: str
    mode: str
    sha: str
    size: int | None


def list_tree(repo_root: Path, commit: str) -> list[TreeEntry]:
    """Every file of `commit`, recursively, with its mode, blob id and size."""
    out = git(repo_root, "ls-tree", "-r", "-z", "-l", "--full-tree", commit).stdout
    entries = []
    for record in out.split(b"\0"):
        if not record:
            continue
        meta, _, raw_path = record.partition(b"\t")
        mode, _kind, sha, size = meta.decode().split()
        path = raw_path.decode("utf-8", "surrogateescape")
        entries.append(TreeEntry(path, mode, sha, None if size == "-" else int(size)))
    return entries


def list_worktree_paths(repo_root: Path) -> tuple[list[str], dict[str, str]]:
    """Tracked and untracked-but-not-ignored paths, plus the index mode of tracked ones (to spot submodules)."""
    listed = git(repo_root, "ls-files", "-z", "--cached", "--others", "--exclude-standard").stdout
    staged = git(repo_root, "ls-files", "-z", "--stage").stdout
    modes: dict[str, str] = {}
    for record in staged.split(b"\0"):
        if record:
            meta, _, raw_path = record.partition(b"\t")
            modes[raw_path.decode("utf-8", "surrogateescape")] = meta.split()[0].decode()
    paths = list(dict.fromkeys(p.decode("utf-8", "surrogateescape") for p in listed.split(b"\0") if p))
    return paths, modes


def blob_sha(data: bytes) -> str:
    """The id git gives a blob with this content (so worktree files compare with committed ones)."""
    digest = hashlib.sha1(b"blob %d\0" % len(data))
    digest.update(data)
    return digest.hexdigest()


class BlobReader:
    """Reads blobs through one long-lived `git cat-file --batch` process (thousands per second)."""

    def __init__(self, repo_root: Path) -> None:
        self._proc = subprocess.Popen(
            ["git", "cat-file", "--batch"],
            cwd=repo_root,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=clean_env(),
        )

    def read(self, sha: str) -> bytes:
        """The content of blob `sha`."""
        stdin, stdout = self._pipes()
        stdin.write(sha.encode() + b"\n")
        stdin.flush()
        header = stdout.readline().split()
        if len(header) != 3:
            raise RepoIndexError(f"git cannot read object {sha}: {b' '.join(header).decode()}", None)
        data = stdout.read(int(header[2]))
        stdout.read(1)  # the newline git writes after each object
        return data

    def _pipes(self) -> tuple[IO[bytes], IO[bytes]]:
        assert self._proc.stdin is not None and self._proc.stdout is not None
        return self._proc.stdin, self._proc.stdout

    def close(self) -> None:
        """End the git process."""
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        self._proc.wait()
        if self._proc.stdout is not None:
            self._proc.stdout.close()

    def __enter__(self) -> BlobReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

