"""Wiring for the index: which store the settings select, and an update run under the index lock.

The CLI, the post-commit hook and `Services` all come through here, so they share one code path.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from aetherflow import paths
from aetherflow.config.models import IndexConfig
from aetherflow.errors import RepoIndexError
from aetherflow.events import EventBus
from aetherflow.index.embedder import Embedder, FastEmbedder
from aetherflow.index.indexer import Indexer, IndexSummary
from aetherflow.index.lock import IndexLock, run_serialised
from aetherflow.index.store import EdgeStore, Store

INDEX_DIR_NAME = "index"


def index_dir(repo_root: Path) -> Path:
    """`.aetherflow/index/`: the embedded store (the state folder is created with its `.gitignore`)."""
    return paths.ensure_state_dir(repo_root) / INDEX_DIR_NAME


def open_store(config: IndexConfig, repo_root: Path, environ: Mapping[str, str] | None = None) -> Store:
    """The store the settings select: a Qdrant server when `index.url` is set, else the embedded shard."""
    if config.url:
        from aetherflow.index.store_qdrant import QdrantServerStore, collection_name, connect

        client = connect(config, os.environ if environ is None else environ)
        name = collection_name(repo_root)
        return QdrantServerStore(client, name, description=f"collection {name} on {config.url}")
    return EdgeStore(index_dir(repo_root))


def run_update(
    repo_root: Path,
    config: IndexConfig,
    *,
    full: bool = False,
    worktree: bool = False,
    wait_s: float = 0.0,
    bus: EventBus | None = None,
    environ: Mapping[str, str] | None = None,
    embedder: Embedder | None = None,
) -> list[IndexSummary]:
    """Update the index under the lock, waiting up to `wait_s` for another indexer; then run once more for
    every update requested meanwhile (a commit's hook leaves a pending marker when it finds the lock taken).

    Returns one summary per run (the first is the one asked for). Raises RepoIndexError naming the holder
    when the lock stays taken.
    """
    shared_embedder = embedder or FastEmbedder(config)
    runs = 0

    def work() -> IndexSummary:
        nonlocal runs
        first = runs == 0
        runs += 1
        store = open_store(config, repo_root, environ)
        try:
            indexer = Indexer(repo_root, config, store, shared_embedder, bus=bus)
            # A re-run for a pending request indexes the new HEAD, whatever flags the first run had.
            return indexer.update(full=full and first, worktree=worktree and first)
        finally:
            store.close()

    got, summaries = run_serialised(repo_root, work, wait_s)
    if not got:
        holder = IndexLock(repo_root).holder()
        who = holder.describe() if holder is not None else "a process that has just finished"
        raise RepoIndexError(
            f"Another indexer holds the index lock: {who}.",
            "Wait for it to finish (or pass --wait SECONDS to wait for it), then run `aether index` again.",
        )
    return summaries
