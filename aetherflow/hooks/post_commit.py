"""The post-commit hook: update the index in the background, never delaying or failing the commit.

`aether hook run post-commit` (what the installed script calls) only starts a detached child — a new session,
stdin closed, output appended to `.aetherflow/logs/post-commit.log` — and returns 0 at once. The child
(`python -m aetherflow.hooks.post_commit <repo>`) takes the index lock without waiting: when another process
holds it, the child leaves a pending marker and exits, and the holder runs the update after it finishes.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from aetherflow import paths
from aetherflow.errors import AetherError
from aetherflow.index import gitrepo

if TYPE_CHECKING:
    from aetherflow.config.models import IndexConfig
    from aetherflow.index.indexer import IndexSummary

LOG_NAME = "post-commit.log"
LOG_MAX_BYTES = 1_000_000


def log_file(repo_root: Path) -> Path:
    """Where the background updates write what they did."""
    folder = paths.ensure_state_dir(repo_root) / "logs"
    folder.mkdir(exist_ok=True)
    log = folder / LOG_NAME
    if log.exists() and log.stat().st_size > LOG_MAX_BYTES:
        log.replace(log.with_name(LOG_NAME + ".1"))  # one generation is enough to read what went wrong
    return log


def spawn_background_update(repo_root: Path) -> int:
    """Start the index update detached from git and return at once. Returns the child's pid."""
    with log_file(repo_root).open("ab") as log:
        child = subprocess.Popen(
            [sys.executable, "-m", "aetherflow.hooks.post_commit", str(repo_root)],
            cwd=repo_root,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # git (or a terminal's Ctrl-C) must not take the update down with it
            close_fds=True,
            env=gitrepo.clean_env(),
        )
    return child.pid


def background_update(repo_root: Path) -> int:
    """The detached child: update the index once the lock is free, or leave the request pending. Always 0."""
    from aetherflow.config import load_settings
    from aetherflow.index.lock import request_or_run

    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    try:
        settings = load_settings(repo_root)
        summaries = request_or_run(repo_root, lambda: _update_once(repo_root, settings.index))
    except AetherError as exc:
        print(f"{stamp} post-commit index update failed: {exc}", flush=True)
        return 0
    if not summaries:
        print(f"{stamp} index busy: update left pending for the process holding the lock", flush=True)
    for summary in summaries:
        print(
            f"{stamp} indexed {summary.commit or 'work tree'}: {summary.files_indexed} file(s) embedded, "
            f"{summary.files_deleted} removed, {summary.chunks_total} chunks, {summary.seconds:.1f} s",
            flush=True,
        )
    return 0


def _update_once(repo_root: Path, config: IndexConfig) -> IndexSummary:
    from aetherflow.index.embedder import FastEmbedder
    from aetherflow.index.indexer import Indexer
    from aetherflow.index.service import open_store

    store = open_store(config, repo_root)
    try:
        return Indexer(repo_root, config, store, FastEmbedder(config)).update()
    finally:
        store.close()


if __name__ == "__main__":
    sys.exit(background_update(Path(sys.argv[1])))
