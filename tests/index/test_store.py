"""The store contract, run against the embedded Edge store and the QdrantClient store (server code path)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from index_support import PROJECT_ROOT

from aetherflow.errors import RepoIndexError
from aetherflow.index.store import EdgeStore, Store, StoreFilter
from aetherflow.index.store_qdrant import QdrantServerStore

DIM = 4

pytestmark = pytest.mark.filterwarnings("ignore:Payload indexes have no effect in the local Qdrant")


def _edge(tmp_path: Path) -> Store:
    return EdgeStore(tmp_path / "index", open_timeout_s=0.5)


def _qdrant_client(tmp_path: Path) -> Store:
    from qdrant_client import QdrantClient

    # qdrant-client's local mode exposes the same API as a server: it runs QdrantServerStore's real code.
    return QdrantServerStore(QdrantClient(path=str(tmp_path / "qdrant")), "test-collection")


@pytest.fixture(params=[_edge, _qdrant_client], ids=["edge", "qdrant-client"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    made = request.param(tmp_path)
    made.reset(DIM)
    yield made
    made.close()


def _chunk(n: int, path: str, language: str = "python") -> dict:
    return {"record": "chunk", "path": path, "language": language, "start_line": n, "end_line": n + 1, "text": f"t{n}"}


def _fill(store: Store) -> list[str]:
    ids = [f"00000000-0000-0000-0000-00000000000{i}" for i in range(4)]
    dense = [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0.9, 0.1, 0, 0]]
    sparse = [([1, 2], [1.0, 1.0]), ([3], [1.0]), ([2, 4], [1.0, 0.5]), ([5], [1.0])]
    payloads = [_chunk(0, "a.py"), _chunk(1, "b.py"), _chunk(2, "src/c.go", "go"), _chunk(3, "a.py")]
    store.upsert_chunks(ids, dense, sparse, payloads)
    return ids


def test_dense_sparse_and_hybrid_rankings(store: Store) -> None:
    ids = _fill(store)
    dense_hits = store.search([1, 0, 0, 0], None, 2, StoreFilter(), mode="dense")
    assert [h.id for h in dense_hits] == [ids[0], ids[3]]
    sparse_hits = store.search(None, ([3], [1.0]), 3, StoreFilter(), mode="sparse")
    assert [h.id for h in sparse_hits] == [ids[1]]
    # Dense ranks 0, 3, then 1 and 2; sparse (token 4) finds only 2. Fused: 2 (in both lists) and 0 (first
    # in one) lead, 3 (second in one) follows.
    hybrid = store.search([1, 0, 0, 0], ([4], [1.0]), 3, StoreFilter())
    assert {h.id for h in hybrid[:2]} == {ids[0], ids[2]}
    assert hybrid[2].id == ids[3]
    assert {h.payload["path"] for h in hybrid[:2]} == {"a.py", "src/c.go"}


def test_filters_by_language_and_paths(store: Store) -> None:
    ids = _fill(store)
    go_only = store.search([1, 0, 0, 0], ([1], [1.0]), 5, StoreFilter(language="go"))
    assert [h.id for h in go_only] == [ids[2]]
    b_only = store.search([1, 0, 0, 0], None, 5, StoreFilter(paths=["b.py"]), mode="dense")
    assert [h.id for h in b_only] == [ids[1]]
    assert store.search([1, 0, 0, 0], None, 5, StoreFilter(paths=[]), mode="dense") == []


def test_records_are_not_search_results_and_paths_delete_everything(store: Store) -> None:
    _fill(store)
    store.put_records({"10000000-0000-0000-0000-000000000000": {"record": "file", "path": "a.py", "chunks": 2}})
    store.put_records({"20000000-0000-0000-0000-000000000000": {"record": "meta", "commit": "abc"}})
    assert store.get_record("20000000-0000-0000-0000-000000000000") == {"record": "meta", "commit": "abc"}
    assert store.get_record("30000000-0000-0000-0000-000000000000") is None
    assert [r["path"] for r in store.scroll_records("file")] == ["a.py"]
    assert store.count_chunks() == 4
    hits = store.search([1, 0, 0, 0], ([1, 2, 3, 4, 5], [1.0] * 5), 10, StoreFilter())
    assert {h.payload["record"] for h in hits} == {"chunk"}
    store.delete_paths({"a.py"})
    assert store.count_chunks() == 2
    assert list(store.scroll_records("file")) == []


def test_a_query_without_known_terms_has_no_sparse_arm(store: Store) -> None:
    _fill(store)
    assert store.search(None, ([], []), 5, StoreFilter(), mode="sparse") == []
    assert len(store.search([0, 1, 0, 0], ([], []), 2, StoreFilter())) == 2


def test_edge_store_persists_across_reopen(tmp_path: Path) -> None:
    store = _edge(tmp_path)
    store.reset(DIM)
    _fill(store)
    store.close()
    again = _edge(tmp_path)
    assert again.exists()
    assert again.count_chunks() == 4
    again.close()


def test_damaged_or_foreign_edge_folder_names_the_rebuild_command(tmp_path: Path) -> None:
    store = _edge(tmp_path)
    store.reset(DIM)
    _fill(store)
    store.close()
    (store.shard_dir / "edge_config.json").write_text("{not json")
    with pytest.raises(RepoIndexError) as damaged:
        _edge(tmp_path).count_chunks()
    assert "aether index --full" in str(damaged.value)
    (store.shard_dir / "edge_config.json").write_text('{"vectors": {"other": {"size": 4, "distance": "Cosine"}}}')
    with pytest.raises(RepoIndexError) as foreign:
        _edge(tmp_path).count_chunks()
    assert "incompatible" in str(foreign.value) and "aether index --full" in str(foreign.value)
    rebuilt = _edge(tmp_path)
    rebuilt.reset(DIM)
    assert rebuilt.count_chunks() == 0
    rebuilt.close()


def test_segment_damage_is_reported_with_the_rebuild_command(tmp_path: Path) -> None:
    store = _edge(tmp_path)
    store.reset(DIM)
    _fill(store)
    store.close()
    for item in (store.shard_dir / "segments").iterdir():
        if item.is_dir():
            for inner in item.rglob("*"):
                if inner.is_file():
                    inner.write_bytes(b"\x00garbage")
    with pytest.raises(RepoIndexError) as damaged:
        reopened = _edge(tmp_path)
        reopened.count_chunks()
        reopened.search([1, 0, 0, 0], None, 2, StoreFilter(), mode="dense")
    assert "aether index --full" in str(damaged.value)


def test_edge_store_open_in_another_process_waits_then_explains(tmp_path: Path) -> None:
    store = _edge(tmp_path)
    store.reset(DIM)
    _fill(store)
    store.close()
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys
            sys.path.insert(0, {str(PROJECT_ROOT)!r})
            from pathlib import Path
            from aetherflow.index.store import EdgeStore
            s = EdgeStore(Path({str(tmp_path / "index")!r}))
            s.count_chunks()
            print("open", flush=True)
            sys.stdin.readline()
            s.close()
        """)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        with pytest.raises(RepoIndexError) as busy:
            _edge(tmp_path).count_chunks()
        assert "open in another AetherFlow process" in str(busy.value)
    finally:
        assert holder.stdin is not None
        holder.stdin.write("\n")
        holder.stdin.close()
        holder.wait(timeout=30)
    assert _edge(tmp_path).count_chunks() == 4


@pytest.mark.filterwarnings("ignore:Api key is used with an insecure connection")
def test_server_mode_selection_and_failures(make_repo) -> None:
    from aetherflow.config.models import IndexConfig
    from aetherflow.errors import ConfigError
    from aetherflow.index.service import open_store
    from aetherflow.index.store_qdrant import collection_name

    repo = make_repo({"a.py": "x = 1\n"})
    assert isinstance(open_store(IndexConfig(), repo), EdgeStore)
    with pytest.raises(ConfigError) as no_key:
        open_store(IndexConfig(url="http://127.0.0.1:9", api_key_env="QDRANT_TEST_KEY"), repo, environ={})
    assert "QDRANT_TEST_KEY" in str(no_key.value)
    server = open_store(
        IndexConfig(url="http://127.0.0.1:9", api_key_env="QDRANT_TEST_KEY"), repo, environ={"QDRANT_TEST_KEY": "k"}
    )
    assert isinstance(server, QdrantServerStore) and server.collection == collection_name(repo)
    with pytest.raises(RepoIndexError) as refused:
        server.exists()
    assert "127.0.0.1:9" in str(refused.value) and "index.url" in str(refused.value)
    server.close()
