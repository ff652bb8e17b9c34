"""The small store interface the indexer and the retriever use, and the embedded implementation.

Engine choice (measured, see bench/bench_index.py and STACK.md): Qdrant Edge (`qdrant-edge-py`), Qdrant's
in-process engine. It reopens in milliseconds and keeps vectors on disk, where qdrant-client's local mode loads
the whole collection into RAM and takes seconds to open past 50k points. Edge supports named dense and sparse
vectors, the IDF modifier and prefetch + RRF fusion, so hybrid search runs inside the engine as with a server.
`index.url` selects `QdrantServerStore` (store_qdrant.py): the same interface over `QdrantClient`.

Every point carries a `record` payload field: "chunk" (searchable, with vectors), "file" and "meta"
(vectorless bookkeeping, see state.py). Only chunks have vectors, so only chunks are ever search results.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Collection, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from pydantic import BaseModel

from aetherflow.errors import RepoIndexError
from aetherflow.index.state import RecordKind

if TYPE_CHECKING:
    import qdrant_edge as qe

SparseVector = tuple[list[int], list[float]]
SearchMode = Literal["hybrid", "dense", "sparse"]

DENSE = "dense"
SPARSE = "sparse"
RRF_K = 60
KEYWORD_FIELDS = ("record", "path", "language")
REBUILD_HINT = "Rebuild it with `aether index --full`."
DELETE_BATCH = 512
SCROLL_PAGE = 1024


class StoreFilter(BaseModel):
    """Restrictions on search results: one language, and/or a set of exact paths (from a glob)."""

    language: str | None = None
    paths: list[str] | None = None


class StoreHit(BaseModel):
    """One search result: the chunk's id, its fused (or single-vector) score, and its payload."""

    id: str
    score: float
    payload: dict[str, Any]


class Store(Protocol):
    """What the index needs from a vector store. Implementations: EdgeStore, QdrantServerStore."""

    description: str

    def exists(self) -> bool:
        """True when the collection has been created."""
        ...

    def reset(self, dim: int) -> None:
        """Drop everything and create an empty collection for `dim`-dimensional dense vectors."""
        ...

    def upsert_chunks(
        self,
        ids: Sequence[str],
        dense: Sequence[Sequence[float]],
        sparse: Sequence[SparseVector],
        payloads: Sequence[dict[str, Any]],
    ) -> None:
        """Insert or replace chunk points (each with a dense and a sparse vector)."""
        ...

    def put_records(self, records: dict[str, dict[str, Any]]) -> None:
        """Insert or replace vectorless bookkeeping points, by id."""
        ...

    def get_record(self, record_id: str) -> dict[str, Any] | None:
        """The payload of one point, or None."""
        ...

    def scroll_records(self, kind: RecordKind, fields: list[str] | None = None) -> Iterator[dict[str, Any]]:
        """Every payload whose `record` is `kind` (only `fields` when given)."""
        ...

    def delete_paths(self, paths: Collection[str]) -> None:
        """Delete every point (chunks and file records) of these paths."""
        ...

    def search(
        self,
        dense: Sequence[float] | None,
        sparse: SparseVector | None,
        k: int,
        flt: StoreFilter,
        mode: SearchMode = "hybrid",
    ) -> list[StoreHit]:
        """The best `k` chunks: dense and sparse candidates fused by RRF (hybrid), or one of them alone."""
        ...

    def count_chunks(self) -> int:
        """How many chunk points the collection holds."""
        ...

    def idle(self) -> None:
        """Let other processes use the store while this one computes (it reopens on the next call)."""
        ...

    def close(self) -> None:
        """Release the store (files, locks, connections)."""
        ...


def prefetch_limit(k: int) -> int:
    """How many candidates each arm of a hybrid query brings to the fusion."""
    return max(4 * k, 50)


def active_arms(
    dense: Sequence[float] | None, sparse: SparseVector | None, mode: SearchMode
) -> tuple[bool, bool]:
    """Which of the dense and sparse searches a query runs (a query with no known token has no sparse arm)."""
    use_dense = dense is not None and mode in ("hybrid", "dense")
    use_sparse = sparse is not None and bool(sparse[0]) and mode in ("hybrid", "sparse")
    return use_dense, use_sparse


class EdgeStore:
    """The embedded store: a Qdrant Edge shard in `.aetherflow/index/shard`.

    A shard may be open in one process at a time (Edge locks its write-ahead log). The store opens the shard on
    first use and `close()` lets go of it; opening waits up to `open_timeout_s` for another process to close
    it, so a search and a background update take turns rather than fail.
    """

    def __init__(self, folder: Path, open_timeout_s: float = 30.0) -> None:
        self.folder = folder
        self.shard_dir = folder / "shard"
        self.description = f"embedded index at {self.shard_dir}"
        self.open_timeout_s = open_timeout_s
        self._shard: qe.EdgeShard | None = None

    def exists(self) -> bool:
        return (self.shard_dir / "edge_config.json").is_file()

    def _open(self) -> qe.EdgeShard:
        if self._shard is not None:
            return self._shard
        if not self.exists():
            raise RepoIndexError(f"No index at {self.shard_dir}.", "Build it with `aether index`.")
        self._check_layout()
        import qdrant_edge as qe

        deadline = time.monotonic() + self.open_timeout_s
        while self._shard is None:
            try:
                self._shard = qe.EdgeShard.load(str(self.shard_dir))
            # qdrant_edge raises bare Exception for every failure; the message tells a busy WAL from damage.
            except Exception as exc:  # noqa: BLE001
                if "WouldBlock" not in str(exc):
                    raise _damaged(self.shard_dir, exc) from exc
                if time.monotonic() >= deadline:
                    raise _busy(self.shard_dir) from exc
                time.sleep(0.05)
        return self._shard

    def _check_layout(self) -> None:
        """Refuse a folder that is not one of our shards (damaged, foreign, or from a future layout)."""
        try:
            config = json.loads((self.shard_dir / "edge_config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise _damaged(self.shard_dir, exc) from exc
        if not isinstance(config, dict) or DENSE not in (config.get("vectors") or {}) or SPARSE not in (
            config.get("sparse_vectors") or {}
        ):
            raise RepoIndexError(
                f"The index at {self.shard_dir} has an incompatible layout (no '{DENSE}'/'{SPARSE}' vectors).",
                REBUILD_HINT,
            )

    def reset(self, dim: int) -> None:
        import qdrant_edge as qe

        self.close()
        if self.shard_dir.exists():
            shutil.rmtree(self.shard_dir)
        self.folder.mkdir(parents=True, exist_ok=True)
        config = qe.EdgeConfig(
            vectors={DENSE: qe.EdgeVectorParams(size=dim, distance=qe.Distance.Cosine)},
            sparse_vectors={SPARSE: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)},
        )
        shard = qe.EdgeShard.create(str(self.shard_dir), config)
        for name in KEYWORD_FIELDS:
            shard.update(qe.UpdateOperation.create_field_index(name, qe.PayloadSchemaType.Keyword))
        self._shard = shard

    def upsert_chunks(
        self,
        ids: Sequence[str],
        dense: Sequence[Sequence[float]],
        sparse: Sequence[SparseVector],
        payloads: Sequence[dict[str, Any]],
    ) -> None:
        import qdrant_edge as qe

        points = [
            qe.Point(pid, {DENSE: [float(x) for x in vec], SPARSE: qe.SparseVector(sp[0], sp[1])}, payload)
            for pid, vec, sp, payload in zip(ids, dense, sparse, payloads, strict=True)
        ]
        if points:
            self._open().update(qe.UpdateOperation.upsert_points(points))

    def put_records(self, records: dict[str, dict[str, Any]]) -> None:
        import qdrant_edge as qe

        points = [qe.Point(pid, {}, payload) for pid, payload in records.items()]
        if points:
            self._open().update(qe.UpdateOperation.upsert_points(points))

    def get_record(self, record_id: str) -> dict[str, Any] | None:
        found = self._open().retrieve([record_id], with_payload=True, with_vector=False)
        return dict(found[0].payload or {}) if found else None

    def scroll_records(self, kind: RecordKind, fields: list[str] | None = None) -> Iterator[dict[str, Any]]:
        import qdrant_edge as qe

        flt = qe.Filter(must=[qe.FieldCondition(key="record", match=qe.MatchValue(kind))])
        offset = None
        while True:
            request = qe.ScrollRequest(
                offset=offset, limit=SCROLL_PAGE, filter=flt, with_payload=fields or True, with_vector=False
            )
            records, offset = self._open().scroll(request)
            for record in records:
                yield dict(record.payload or {})
            if offset is None:
                return

    def delete_paths(self, paths: Collection[str]) -> None:
        import qdrant_edge as qe

        ordered = sorted(paths)
        for start in range(0, len(ordered), DELETE_BATCH):
            batch = ordered[start : start + DELETE_BATCH]
            flt = qe.Filter(must=[qe.FieldCondition(key="path", match=qe.MatchAny(batch))])
            self._open().update(qe.UpdateOperation.delete_points_by_filter(flt))

    def search(
        self,
        dense: Sequence[float] | None,
        sparse: SparseVector | None,
        k: int,
        flt: StoreFilter,
        mode: SearchMode = "hybrid",
    ) -> list[StoreHit]:
        import qdrant_edge as qe

        use_dense, use_sparse = active_arms(dense, sparse, mode)
        if (flt.paths is not None and not flt.paths) or not (use_dense or use_sparse):
            return []
        queries = []
        if use_dense and dense is not None:
            queries.append(qe.Query.Nearest([float(x) for x in dense], using=DENSE))
        if use_sparse and sparse is not None:
            queries.append(qe.Query.Nearest(qe.SparseVector(sparse[0], sparse[1]), using=SPARSE))
        edge_filter = self._filter(flt)
        if len(queries) == 1:
            request = qe.QueryRequest(limit=k, query=queries[0], filter=edge_filter, with_payload=True)
        else:
            prefetches = [qe.Prefetch(limit=prefetch_limit(k), query=q, filter=edge_filter) for q in queries]
            request = qe.QueryRequest(
                limit=k, prefetches=prefetches, query=qe.Fusion.Rrf(k=RRF_K), with_payload=True
            )
        points = self._open().query(request)
        return [StoreHit(id=str(p.id), score=p.score, payload=dict(p.payload or {})) for p in points]

    @staticmethod
    def _filter(flt: StoreFilter) -> qe.Filter:
        import qdrant_edge as qe

        must: list[Any] = [qe.FieldCondition(key="record", match=qe.MatchValue("chunk"))]
        if flt.language:
            must.append(qe.FieldCondition(key="language", match=qe.MatchValue(flt.language)))
        if flt.paths is not None:
            must.append(qe.FieldCondition(key="path", match=qe.MatchAny(list(flt.paths))))
        return qe.Filter(must=must)

    def count_chunks(self) -> int:
        import qdrant_edge as qe

        flt = qe.Filter(must=[qe.FieldCondition(key="record", match=qe.MatchValue("chunk"))])
        return self._open().count(qe.CountRequest(exact=True, filter=flt))

    def idle(self) -> None:
        # Edge lets one process open a shard at a time: closing it while embedding lets searches in.
        self.close()

    def close(self) -> None:
        if self._shard is not None:
            self._shard.close()
            self._shard = None


def _damaged(where: Path, exc: BaseException) -> RepoIndexError:
    return RepoIndexError(
        f"The index at {where} is damaged or was written by an incompatible version ({exc}).", REBUILD_HINT
    )


def _busy(where: Path) -> RepoIndexError:
    return RepoIndexError(
        f"The index at {where} is open in another AetherFlow process (an update or a search).",
        "Wait for it to finish and try again; `aether index` waits for the lock and says who holds it.",
    )
