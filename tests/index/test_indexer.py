"""Incremental indexing by git blob, rebuild triggers, crash safety and the index lock."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest
from index_support import PROJECT_ROOT, commit, git, wait_until, write

from aetherflow.config.models import IndexConfig
from aetherflow.errors import RepoIndexError, UsageError
from aetherflow.events import Event, EventBus, IndexProgress
from aetherflow.index.embedder import FastEmbedder
from aetherflow.index.indexer import Indexer, read_meta
from aetherflow.index.lock import IndexLock, PendingMarker
from aetherflow.index.service import index_dir, run_update
from aetherflow.index.state import META_ID
from aetherflow.index.store import EdgeStore

FILES = {
    "app/models.py": (
        "class User:\n    \"\"\"A registered user.\"\"\"\n\n    def full_name(self):\n        return 'x'\n"
    ),
    "app/views.py": "def render_page(request):\n    \"\"\"Render the home page.\"\"\"\n    return 'ok'\n",
    "app/util.py": "def slugify(text):\n    return text.lower().replace(' ', '-')\n",
    "web/main.js": "function start() {\n  return 1;\n}\n",
    "README.md": "# Project\n\nHow to install.\n\n## Usage\n\nRun it.\n",
}


class RenamedEmbedder:
    """The real embedder under another model name (what a changed `index.embedding_model` looks like)."""

    def __init__(self, inner: FastEmbedder, name: str) -> None:
        self.inner = inner
        self.model_name = name

    @property
    def dim(self) -> int:
        return self.inner.dim

    def embed_documents(self, texts: Sequence[str], on_batch: Callable[[int], None] | None = None) -> np.ndarray:
        return self.inner.embed_documents(texts, on_batch)

    def embed_query(self, text: str) -> list[float]:
        return self.inner.embed_query(text)


class InterruptingEmbedder(RenamedEmbedder):
    """Embeds `allowed` groups, then raises KeyboardInterrupt (a Ctrl-C in the middle of a run)."""

    def __init__(self, inner: FastEmbedder, allowed: int) -> None:
        super().__init__(inner, inner.model_name)
        self.allowed = allowed

    def embed_documents(self, texts: Sequence[str], on_batch: Callable[[int], None] | None = None) -> np.ndarray:
        if self.allowed == 0:
            raise KeyboardInterrupt
        self.allowed -= 1
        return self.inner.embed_documents(texts, on_batch)


def _snapshot(store: EdgeStore) -> tuple[set[tuple], set[tuple]]:
    """What the index holds, independent of point order: chunks and file records."""
    chunks = {
        (p["path"], p["start_line"], p["end_line"], p["kind"], p["blob_sha"], p["symbol"])
        for p in store.scroll_records("chunk")
    }
    records = {(p["path"], p["blob_sha"], p["chunks"]) for p in store.scroll_records("file")}
    return chunks, records


def _full_rebuild_snapshot(repo: Path, tmp_path: Path, config: IndexConfig, embedder: FastEmbedder):
    fresh = EdgeStore(tmp_path / "fresh-index")
    try:
        Indexer(repo, config, fresh, embedder).update(full=True)
        return _snapshot(fresh)
    finally:
        fresh.close()


def _indexer(repo: Path, config: IndexConfig, embedder, **kwargs) -> tuple[Indexer, EdgeStore]:
    store = EdgeStore(index_dir(repo))
    return Indexer(repo, config, store, embedder, **kwargs), store


def test_incremental_updates_match_a_full_rebuild(make_repo, tmp_path, index_config, embedder) -> None:
    repo = make_repo(FILES)
    indexer, store = _indexer(repo, index_config, embedder)
    first = indexer.update()
    assert first.rebuilt and first.rebuild_reason == "no index yet"
    assert first.files_indexed == 5 and first.chunks_total == first.chunks_added > 5
    head = commit(
        repo,
        {
            "app/views.py": "def render_page(request):\n    \"\"\"Render the new home page.\"\"\"\n    return 'new'\n",
            "app/util.py": None,
            "app/api.py": "def list_users():\n    return []\n",
        },
    )
    git(repo, "mv", "web/main.js", "web/app.js")
    head = commit(repo, message="rename")
    second = indexer.update()
    assert not second.rebuilt
    assert (second.files_indexed, second.files_deleted, second.files_unchanged) == (3, 2, 2)
    assert read_meta(store).commit == head
    assert _snapshot(store) == _full_rebuild_snapshot(repo, tmp_path, index_config, embedder)
    third = indexer.update()
    assert (third.files_indexed, third.chunks_added, third.files_unchanged) == (0, 0, 5)
    store.close()


def test_model_or_chunker_change_forces_a_full_rebuild(make_repo, index_config, embedder) -> None:
    repo = make_repo(FILES)
    indexer, store = _indexer(repo, index_config, embedder)
    indexer.update()
    renamed = Indexer(repo, index_config, store, RenamedEmbedder(embedder, "another/model"))
    summary = renamed.update()
    assert summary.rebuilt and "embedding model changed" in (summary.rebuild_reason or "")
    assert summary.files_indexed == 5
    meta = read_meta(store)
    assert meta is not None
    store.put_records({META_ID: {**meta.model_dump(mode="json"), "chunker_version": "0", "record": "meta"}})
    again = renamed.update()
    assert again.rebuilt and again.rebuild_reason == f"chunker version changed (0 → {meta.chunker_version})"
    store.close()


def test_interrupted_run_resumes_and_never_claims_the_commit(make_repo, tmp_path, index_config, embedder) -> None:
    repo = make_repo({f"pkg/mod{i}.py": f"def func_{i}(x):\n    return x + {i}\n" for i in range(12)})
    indexer, store = _indexer(repo, index_config, InterruptingEmbedder(embedder, allowed=2), group_chunks=3)
    with pytest.raises(KeyboardInterrupt):
        indexer.update()
    meta = read_meta(store)
    assert meta is not None and not meta.complete and meta.commit is None
    assert meta.in_flight  # the group being embedded when Ctrl-C came
    recorded = {p["path"] for p in store.scroll_records("file")}
    assert 0 < len(recorded) < 12 and not recorded & set(meta.in_flight)
    resumed, _ = _indexer(repo, index_config, embedder)
    resumed.store = store
    summary = resumed.update()
    assert not summary.rebuilt and summary.files_indexed == 12 - len(recorded)
    assert read_meta(store).complete
    assert _snapshot(store) == _full_rebuild_snapshot(repo, tmp_path, index_config, embedder)
    store.close()


def test_killed_run_resumes(make_repo, tmp_path, index_config, embedder) -> None:
    repo = make_repo({f"pkg/mod{i}.py": f"def func_{i}(x):\n    return x * {i}\n" for i in range(8)})
    script = textwrap.dedent(f"""
        import sys, threading
        sys.path.insert(0, {str(PROJECT_ROOT)!r})
        from pathlib import Path
        from aetherflow.config.models import IndexConfig
        from aetherflow.index.embedder import FastEmbedder
        from aetherflow.index.indexer import Indexer
        from aetherflow.index.service import index_dir
        from aetherflow.index.store import EdgeStore

        class Stalling(FastEmbedder):
            calls = 0
            def embed_documents(self, texts, on_batch=None):
                Stalling.calls += 1
                if Stalling.calls == 3:
                    print("stalled", flush=True)
                    threading.Event().wait()
                return super().embed_documents(texts, on_batch)

        repo = Path({str(repo)!r})
        config = IndexConfig(model_path={index_config.model_path!r})
        Indexer(repo, config, EdgeStore(index_dir(repo)), Stalling(config), group_chunks=2).update()
    """)
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "stalled"
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=30)
    child.stdout.close()
    indexer, store = _indexer(repo, index_config, embedder)
    meta = read_meta(store)
    assert meta is not None and not meta.complete
    summary = indexer.update()
    assert 0 < summary.files_indexed < 8 and not summary.rebuilt
    assert _snapshot(store) == _full_rebuild_snapshot(repo, tmp_path, index_config, embedder)
    store.close()


def test_worktree_mode_takes_uncommitted_changes(make_repo, index_config, embedder) -> None:
    repo = make_repo(FILES)
    indexer, store = _indexer(repo, index_config, embedder)
    indexer.update()
    write(repo, {"app/util.py": "def slugify(text):\n    return text.strip()\n", "app/new.py": "X = 1\n"})
    dirty = indexer.update(worktree=True)
    assert dirty.worktree and dirty.files_indexed == 2
    texts = {p["path"]: p["text"] for p in store.scroll_records("chunk")}
    assert "strip()" in texts["app/util.py"] and "app/new.py" in texts
    clean = indexer.update()
    assert clean.files_indexed == 1 and clean.files_deleted == 1
    assert "lower()" in {p["path"]: p["text"] for p in store.scroll_records("chunk")}["app/util.py"]
    store.close()


def test_empty_repository_needs_a_commit_or_worktree(make_repo, index_config, embedder) -> None:
    repo = make_repo()
    write(repo, {"draft.py": "def draft():\n    pass\n"})
    indexer, store = _indexer(repo, index_config, embedder)
    with pytest.raises(UsageError) as empty:
        indexer.update()
    assert "no commits yet" in str(empty.value) and "--worktree" in str(empty.value)
    summary = indexer.update(worktree=True)
    assert summary.commit is None and summary.files_indexed == 1
    meta = read_meta(store)
    assert meta is not None and meta.complete and meta.commit is None
    store.close()


def test_content_skips_are_reported_and_remembered(make_repo, index_config, embedder) -> None:
    repo = make_repo({"ok.py": "x = 1\n", "logo.png": b"\x89PNG\x00\x00", "latin.txt": b"caf\xe9\n"})
    indexer, store = _indexer(repo, index_config, embedder)
    first = indexer.update()
    assert first.skipped_by_reason() == {"binary": 1, "invalid_utf8": 1}
    assert first.files_total == 1
    again = indexer.update()
    assert again.skipped_by_reason() == {"binary": 1, "invalid_utf8": 1} and again.files_indexed == 0
    store.close()


def test_damaged_index_names_the_rebuild_command(make_repo, index_config, embedder) -> None:
    repo = make_repo(FILES)
    indexer, store = _indexer(repo, index_config, embedder)
    indexer.update()
    store.put_records({META_ID: {"record": "meta", "dim": "not a number"}})
    with pytest.raises(RepoIndexError) as unreadable:
        indexer.update()
    assert "aether index --full" in str(unreadable.value)
    store.close()
    (index_dir(repo) / "shard" / "edge_config.json").write_text("garbage")
    with pytest.raises(RepoIndexError) as damaged:
        _indexer(repo, index_config, embedder)[0].update()
    assert "aether index --full" in str(damaged.value)
    rebuilt, fresh_store = _indexer(repo, index_config, embedder)
    assert rebuilt.update(full=True).files_indexed == 5
    fresh_store.close()


def test_second_indexer_reports_the_lock_holder_or_waits(make_repo, index_config, embedder) -> None:
    repo = make_repo(FILES)
    lock = IndexLock(repo)
    assert lock.acquire()
    try:
        with pytest.raises(RepoIndexError) as busy:
            run_update(repo, index_config, wait_s=0, embedder=embedder)
        assert f"pid {os.getpid()}" in str(busy.value)
        threading.Timer(0.3, lock.release).start()
        summaries = run_update(repo, index_config, wait_s=30, embedder=embedder)
    finally:
        lock.release()
    assert summaries[0].files_indexed == 5


def test_update_requested_during_a_run_is_done_after_it(make_repo, index_config, embedder) -> None:
    repo = make_repo(FILES)
    bus = EventBus()
    heads: list[str] = []

    def commit_during_first_run(event: Event) -> None:
        if isinstance(event, IndexProgress) and event.phase == "index" and not heads:
            heads.append(commit(repo, {"app/late.py": "def late_arrival():\n    pass\n"}))
            PendingMarker(repo).set()  # what the post-commit hook does when it finds the lock taken

    bus.subscribe(commit_during_first_run)
    summaries = run_update(repo, index_config, bus=bus, embedder=embedder)
    assert len(summaries) == 2
    assert summaries[1].commit == heads[0] and summaries[1].files_indexed == 1
    assert not PendingMarker(repo).is_set()
    store = EdgeStore(index_dir(repo))
    assert read_meta(store).commit == heads[0]
    store.close()


def test_lock_holder_record_is_released_on_exit(make_repo) -> None:
    repo = make_repo(FILES)
    child = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, threading
            sys.path.insert(0, {str(PROJECT_ROOT)!r})
            from pathlib import Path
            from aetherflow.index.lock import IndexLock
            lock = IndexLock(Path({str(repo)!r}))
            assert lock.acquire()
            print("locked", flush=True)
            threading.Event().wait()
        """)],
        stdout=subprocess.PIPE, text=True,
    )
    assert child.stdout is not None and child.stdout.readline().strip() == "locked"
    holder = IndexLock(repo).holder()
    assert holder is not None and holder.pid == child.pid
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=30)
    child.stdout.close()
    wait_until(lambda: IndexLock(repo).holder() is None, what="the kernel to release the dead holder's lock")
    assert IndexLock(repo).acquire()
