"""The store interface over `QdrantClient`: a Qdrant server or cluster (`index.url`), for large repositories and
teams sharing one index. The same class also runs on qdrant-client's local mode, which is how the tests
exercise this code path without a server.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Collection, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aetherflow.config.models import IndexConfig
from aetherflow.errors import ConfigError, RepoIndexError
from aetherflow.index import gitrepo
from aetherflow.index.state import RecordKind
from aetherflow.index.store import (
    DELETE_BATCH,
    DENSE,
    KEYWORD_FIELDS,
    RRF_K,
    SCROLL_PAGE,
    SPARSE,
    SearchMode,
    SparseVector,
    StoreFilter,
    StoreHit,
    active_arms,
    prefetch_limit,
)

if TYPE_CHECKING:
    from qdrant_client import QdrantClient, models


def collection_name(repo_root: Path) -> str:
    """One collection per repository: its folder name plus a hash of its `origin` URL (so clones share it),
    or of its path when it has no remote."""
    proc = gitrepo.git(repo_root, "config", "--get", "remote.origin.url", check=False)
    identity = proc.stdout.decode().strip() or str(repo_root.resolve())
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", repo_root.name).strip("-")[:40] or "repo"
    return f"aetherflow-{slug}-{hashlib.sha256(identity.encode()).hexdigest()[:10]}"


def connect(config: IndexConfig, environ: Mapping[str, str]) -> QdrantClient:
    """A client for `index.url`, with the API key read from the variable `index.api_key_env` names."""
    from qdrant_client import QdrantClient

    api_key = None
    if config.api_key_env:
        api_key = environ.get(config.api_key_env)
        if not api_key:
            raise ConfigError(
                f"index.api_key_env names {config.api_key_env}, which is not set.",
                f"Export {config.api_key_env} with your Qdrant API key, or remove index.api_key_env.",
            )
    # No version handshake at construction: it costs a round trip on every command, and an unreachable server
    # is reported by the first real call with a message naming index.url.
    return QdrantClient(url=config.url, api_key=api_key, timeout=30, check_compatibility=False)


class QdrantServerStore:
    """A collection on a Qdrant server (or in qdrant-client's local mode) behind the `Store` interface."""

    def __init__(self, client: QdrantClient, collection: str, description: str | None = None) -> None:
        self.client = client
        self.collection = collection
        self.description = description or f"Qdrant collection {collection}"

    def exists(self) -> bool:
        return self._call(lambda: self.client.collection_exists(self.collection))

    def _call(self, action: Any) -> Any:
        """Run a client call, turning connection failures into a message that names the server."""
        from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

        try:
            return action()
        except (ResponseHandlingException, UnexpectedResponse, ConnectionError) as exc:
            raise RepoIndexError(
                f"The Qdrant server for {self.description} failed: {exc}",
                "Check index.url and that the server is running (or unset index.url to use the embedded index).",
            ) from exc

    def reset(self, dim: int) -> None:
        from qdrant_client import models

        def recreate() -> None:
            if self.client.collection_exists(self.collection):
                self.client.delete_collection(self.collection)
            self.client.create_collection(
                self.collection,
                vectors_config={DENSE: models.VectorParams(size=dim, distance=models.Distance.COSINE)},
                sparse_vectors_config={SPARSE: models.SparseVectorParams(modifier=models.Modifier.IDF)},
            )
            for name in KEYWORD_FIELDS:
                self.client.create_payload_index(self.collection, name, models.PayloadSchemaType.KEYWORD)

        self._call(recreate)

    def upsert_chunks(
        self,
        ids: Sequence[str],
        dense: Sequence[Sequence[float]],
        sparse: Sequence[SparseVector],
        payloads: Sequence[dict[str, Any]],
    ) -> None:
        from qdrant_client import models

        points = [
            models.PointStruct(
                id=pid,
                vector={
                    DENSE: [float(x) for x in vec],
                    SPARSE: models.SparseVector(indices=list(sp[0]), values=list(sp[1])),
                },
                payload=payload,
            )
            for pid, vec, sp, payload in zip(ids, dense, sparse, payloads, strict=True)
        ]
        if points:
            self._call(lambda: self.client.upsert(self.collection, points, wait=True))

    def put_records(self, records: dict[str, dict[str, Any]]) -> None:
        from qdrant_client import models

        points = [models.PointStruct(id=pid, vector={}, payload=payload) for pid, payload in records.items()]
        if points:
            self._call(lambda: self.client.upsert(self.collection, points, wait=True))

    def get_record(self, record_id: str) -> dict[str, Any] | None:
        found = self._call(lambda: self.client.retrieve(self.collection, [record_id], with_payload=True))
        return dict(found[0].payload or {}) if found else None

    def scroll_records(self, kind: RecordKind, fields: list[str] | None = None) -> Iterator[dict[str, Any]]:
        flt = self._match("record", kind)
        offset = None
        while True:
            records, offset = self._call(
                lambda offset=offset: self.client.scroll(
                    self.collection, scroll_filter=flt, limit=SCROLL_PAGE, offset=offset,
                    with_payload=fields or True, with_vectors=False,
                )
            )
            for record in records:
                yield dict(record.payload or {})
            if offset is None:
                return

    @staticmethod
    def _match(key: str, value: str) -> models.Filter:
        from qdrant_client import models

        return models.Filter(must=[models.FieldCondition(key=key, match=models.MatchValue(value=value))])

    def delete_paths(self, paths: Collection[str]) -> None:
        from qdrant_client import models

        ordered = sorted(paths)
        for start in range(0, len(ordered), DELETE_BATCH):
            batch = ordered[start : start + DELETE_BATCH]
            flt = models.Filter(must=[models.FieldCondition(key="path", match=models.MatchAny(any=batch))])
            self._call(lambda flt=flt: self.client.delete(self.collection, models.FilterSelector(filter=flt)))

    def search(
        self,
        dense: Sequence[float] | None,
        sparse: SparseVector | None,
        k: int,
        flt: StoreFilter,
        mode: SearchMode = "hybrid",
    ) -> list[StoreHit]:
        from qdrant_client import models

        use_dense, use_sparse = active_arms(dense, sparse, mode)
        if (flt.paths is not None and not flt.paths) or not (use_dense or use_sparse):
            return []
        arms: list[tuple[Any, str]] = []
        if use_dense and dense is not None:
            arms.append(([float(x) for x in dense], DENSE))
        if use_sparse and sparse is not None:
            arms.append((models.SparseVector(indices=list(sparse[0]), values=list(sparse[1])), SPARSE))
        query_filter = self._filter(flt)
        if len(arms) == 1:
            query, using = arms[0]
            kwargs: dict[str, Any] = {"query": query, "using": using, "query_filter": query_filter}
        else:
            prefetch = [
                models.Prefetch(query=q, using=u, limit=prefetch_limit(k), filter=query_filter) for q, u in arms
            ]
            kwargs = {"prefetch": prefetch, "query": models.RrfQuery(rrf=models.Rrf(k=RRF_K))}
        response = self._call(
            lambda: self.client.query_points(self.collection, limit=k, with_payload=True, **kwargs)
        )
        return [StoreHit(id=str(p.id), score=p.score, payload=dict(p.payload or {})) for p in response.points]

    @staticmethod
    def _filter(flt: StoreFilter) -> models.Filter:
        from qdrant_client import models

        must: list[Any] = [models.FieldCondition(key="record", match=models.MatchValue(value="chunk"))]
        if flt.language:
            must.append(models.FieldCondition(key="language", match=models.MatchValue(value=flt.language)))
        if flt.paths is not None:
            must.append(models.FieldCondition(key="path", match=models.MatchAny(any=list(flt.paths))))
        return models.Filter(must=must)

    def count_chunks(self) -> int:
        result = self._call(lambda: self.client.count(self.collection, self._match("record", "chunk"), exact=True))
        return int(result.count)

    def idle(self) -> None:
        """A server serves many clients at once: nothing to release."""

    def close(self) -> None:
        self.client.close()
