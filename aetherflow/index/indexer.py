"""Incremental indexing by git blob: embed only added and changed files, delete removed and renamed ones.

One run, in the order that keeps the index honest when it is interrupted at any point:
1. list the files (files.py) and read the index's header and file records (state.py);
2. write a header with `complete=False` (from here on the index claims no commit);
3. delete the points of removed, changed and half-written (`in_flight`) files;
4. per group of files: note the group as `in_flight`, embed its chunks (sorted by length), upsert them, then
   write each file's record — a file counts as indexed only once its record exists;
5. write the final header (`complete=True`, the commit) last.
A run killed anywhere leaves records only for fully written files; the next run redoes the rest.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from aetherflow.config.models import IndexConfig
from aetherflow.errors import RepoIndexError, UsageError
from aetherflow.events import EventBus, IndexProgress
from aetherflow.index import files, gitrepo
from aetherflow.index.embedder import Embedder
from aetherflow.index.files import Candidate, Listing, SkippedFile
from aetherflow.index.models import CHUNKER_VERSION, Chunk
from aetherflow.index.sparse import SparseEncoder
from aetherflow.index.state import META_FORMAT, META_ID, FileRecord, IndexMeta, SymbolRef, file_record_id
from aetherflow.index.store import REBUILD_HINT, Store

GROUP_CHUNKS = 1024
"""Chunks embedded together: sorted by length within a group, and the unit an interrupted run resumes from."""
GROUP_FILES = 400
MAX_SYMBOLS = 40
_SYMBOL_KINDS = ("function", "class")


class IndexSummary(BaseModel):
    """What one update did."""

    commit: str | None
    worktree: bool
    rebuilt: bool
    rebuild_reason: str | None = None
    files_indexed: int = 0
    files_unchanged: int = 0
    files_deleted: int = 0
    files_total: int = 0
    chunks_added: int = 0
    chunks_total: int = 0
    skipped: list[SkippedFile] = Field(default_factory=list)
    seconds: float = 0.0
    embed_seconds: float = 0.0

    def skipped_by_reason(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for item in self.skipped:
            counts[item.reason] = counts.get(item.reason, 0) + 1
        return dict(sorted(counts.items()))


@dataclass
class _Plan:
    to_index: list[Candidate]
    to_delete: set[str]
    unchanged: list[FileRecord]


@dataclass
class _Group:
    records: list[FileRecord] = field(default_factory=list)
    chunks: list[Chunk] = field(default_factory=list)


def read_meta(store: Store) -> IndexMeta | None:
    """The index header, or None when the store holds none; a header we cannot read means a damaged index."""
    payload = store.get_record(META_ID)
    if payload is None:
        return None
    try:
        return IndexMeta.model_validate({k: v for k, v in payload.items() if k != "record"})
    except ValidationError as exc:
        raise RepoIndexError(f"The index header in {store.description} is unreadable: {exc}", REBUILD_HINT) from exc


class Indexer:
    """Brings a store up to date with a repository. Collaborators are passed in (tests and benches swap them)."""

    def __init__(
        self,
        repo_root: Path,
        config: IndexConfig,
        store: Store,
        embedder: Embedder,
        encoder: SparseEncoder | None = None,
        bus: EventBus | None = None,
        group_chunks: int = GROUP_CHUNKS,
    ) -> None:
        self.repo_root = repo_root
        self.config = config
        self.store = store
        self.embedder = embedder
        self.encoder = encoder or SparseEncoder()
        self.bus = bus
        self.group_chunks = group_chunks

    def update(self, full: bool = False, worktree: bool = False) -> IndexSummary:
        """Index HEAD (or, with `worktree`, the files as they are on disk); `full` rebuilds from scratch."""
        started = time.perf_counter()
        commit = gitrepo.head_commit(self.repo_root)
        if commit is None and not worktree:
            raise UsageError(
                f"The repository at {self.repo_root} has no commits yet, so there is nothing committed to index.",
                "Commit your files first, or run `aether index --worktree` to index them uncommitted.",
            )
        self._progress("scan", 0, 0)
        listing = self._list(commit, worktree)
        meta, records, reason = self._prepare(full)
        plan = _plan(listing, records, meta)
        summary = IndexSummary(commit=commit, worktree=worktree, rebuilt=reason is not None, rebuild_reason=reason)
        if meta is not None and _up_to_date(meta, plan, commit, worktree):
            return self._finish_summary(summary, listing, plan.unchanged, [], started, meta.chunks)
        dim = self.embedder.dim if meta is None else meta.dim
        header = IndexMeta(
            embedding_model=self.embedder.model_name, dim=dim, chunker_version=CHUNKER_VERSION, target=commit
        )
        self.store.put_records({META_ID: _meta_payload(header)})
        self.store.delete_paths(plan.to_delete)
        written = self._index_files(plan.to_index, commit, worktree, header, summary)
        chunks_total = self._claim(header, commit, worktree, [*plan.unchanged, *written])
        summary.files_deleted = len(set(records) - {c.path for c in listing.candidates})
        return self._finish_summary(summary, listing, plan.unchanged, written, started, chunks_total)

    def _claim(self, header: IndexMeta, commit: str | None, worktree: bool, every: list[FileRecord]) -> int:
        """Write the final header, the only place that marks the index complete. Returns the chunk count."""
        chunks_total = self.store.count_chunks()
        final = header.model_copy(
            update={
                "complete": True,
                "commit": commit,
                "target": None,
                "worktree": worktree,
                "in_flight": [],
                "files": sum(1 for r in every if r.skip is None),
                "chunks": chunks_total,
                "updated": time.time(),
            }
        )
        self.store.put_records({META_ID: _meta_payload(final)})
        return chunks_total

    def _list(self, commit: str | None, worktree: bool) -> Listing:
        rules = files.PathRules(self.repo_root, self.config.ignore)
        if worktree:
            return files.list_worktree(self.repo_root, rules, self.config.max_file_bytes)
        assert commit is not None
        return files.list_committed(self.repo_root, commit, rules, self.config.max_file_bytes)

    def _prepare(self, full: bool) -> tuple[IndexMeta | None, dict[str, FileRecord], str | None]:
        """Read the header and file records, or reset the store and say why a full rebuild happens."""
        meta = None if full or not self.store.exists() else read_meta(self.store)
        reason = _rebuild_reason(full, meta, self.embedder.model_name)
        if reason is not None:
            self.store.reset(self.embedder.dim)
            return None, {}, reason
        records = {}
        for payload in self.store.scroll_records("file"):
            record = FileRecord.model_validate({k: v for k, v in payload.items() if k != "record"})
            records[record.path] = record
        return meta, records, None

    def _index_files(
        self, todo: list[Candidate], commit: str | None, worktree: bool, header: IndexMeta, summary: IndexSummary
    ) -> list[FileRecord]:
        written: list[FileRecord] = []
        done_files = 0
        reader = None if worktree else gitrepo.BlobReader(self.repo_root)
        try:
            for group in self._groups(todo, commit, reader):
                self.store.put_records({META_ID: _meta_payload(header, [r.path for r in group.records])})
                self._write_group(group, done_files, len(todo), summary)
                written.extend(group.records)
                done_files += len(group.records)
                self._progress("index", done_files, len(todo))
        finally:
            if reader is not None:
                reader.close()
        return written

    def _groups(self, todo: list[Candidate], commit: str | None, reader: gitrepo.BlobReader | None) -> Iterator[_Group]:
        group = _Group()
        for candidate in todo:
            record, chunks = self._read_and_chunk(candidate, commit, reader)
            group.records.append(record)
            group.chunks.extend(chunks)
            if len(group.chunks) >= self.group_chunks or len(group.records) >= GROUP_FILES:
                yield group
                group = _Group()
        if group.records:
            yield group

    def _read_and_chunk(
        self, candidate: Candidate, commit: str | None, reader: gitrepo.BlobReader | None
    ) -> tuple[FileRecord, list[Chunk]]:
        from aetherflow.index.chunking import chunk_source, detect_language

        data = reader.read(candidate.blob_sha) if reader else files.read_worktree_file(self.repo_root, candidate.path)
        text = data if isinstance(data, SkippedFile) else files.decode_source(candidate.path, data)
        if isinstance(text, SkippedFile):
            return FileRecord(path=candidate.path, blob_sha=candidate.blob_sha, skip=text), []
        language = detect_language(candidate.path) or "text"
        chunks = chunk_source(candidate.path, text, language)
        for chunk in chunks:
            chunk.blob_sha = candidate.blob_sha
            chunk.commit = commit or ""
        record = FileRecord(
            path=candidate.path,
            blob_sha=candidate.blob_sha,
            language=language,
            chunks=len(chunks),
            lines=text.count("\n") + 1,
            symbols=_top_level_symbols(chunks),
        )
        return record, chunks

    def _write_group(self, group: _Group, done_before: int, total: int, summary: IndexSummary) -> None:
        chunks = group.chunks
        if chunks:
            embedded = 0

            def on_batch(n: int) -> None:
                nonlocal embedded
                embedded += n
                share = int(len(group.records) * embedded / len(chunks))
                self._progress("index", done_before + min(share, len(group.records) - 1), total)

            self.store.idle()
            t0 = time.perf_counter()
            dense = self.embedder.embed_documents([c.dense_text() for c in chunks], on_batch=on_batch)
            sparse = self.encoder.encode_documents([c.sparse_text() for c in chunks])
            summary.embed_seconds += time.perf_counter() - t0
            payloads = [{**c.model_dump(), "record": "chunk"} for c in chunks]
            self.store.upsert_chunks([c.chunk_id() for c in chunks], dense, sparse, payloads)
        self.store.put_records(
            {file_record_id(r.path): {**r.model_dump(mode="json"), "record": "file"} for r in group.records}
        )
        summary.chunks_added += len(chunks)

    def _finish_summary(
        self,
        summary: IndexSummary,
        listing: Listing,
        unchanged: list[FileRecord],
        written: list[FileRecord],
        started: float,
        chunks_total: int,
    ) -> IndexSummary:
        every = [*unchanged, *written]
        summary.files_indexed = sum(1 for r in written if r.skip is None)
        summary.files_unchanged = sum(1 for r in unchanged if r.skip is None)
        summary.files_total = sum(1 for r in every if r.skip is None)
        summary.chunks_total = chunks_total
        content_skips = [r.skip for r in every if r.skip is not None]
        summary.skipped = sorted([*listing.skipped, *content_skips], key=lambda s: s.path)
        summary.seconds = time.perf_counter() - started
        self._progress("done", summary.files_indexed, summary.files_indexed)
        return summary

    def _progress(self, phase: str, done: int, total: int) -> None:
        if self.bus is not None:
            self.bus.publish(IndexProgress(phase=phase, done=done, total=total))


def _rebuild_reason(full: bool, meta: IndexMeta | None, model_name: str) -> str | None:
    if full:
        return "full rebuild requested"
    if meta is None:
        return "no index yet"
    if meta.format != META_FORMAT:
        return f"index format changed ({meta.format} → {META_FORMAT})"
    if meta.embedding_model != model_name:
        return f"embedding model changed ({meta.embedding_model} → {model_name})"
    if meta.chunker_version != CHUNKER_VERSION:
        return f"chunker version changed ({meta.chunker_version} → {CHUNKER_VERSION})"
    return None


def _plan(listing: Listing, records: dict[str, FileRecord], meta: IndexMeta | None) -> _Plan:
    in_flight = set(meta.in_flight) if meta is not None else set()
    targets = {c.path: c for c in listing.candidates}
    unchanged = [
        records[p]
        for p, c in targets.items()
        if p in records and records[p].blob_sha == c.blob_sha and p not in in_flight
    ]
    kept = {r.path for r in unchanged}
    to_index = sorted((c for p, c in targets.items() if p not in kept), key=lambda c: c.path)
    # Deleting a path that has no points is cheap; deleting every re-indexed path also removes the partial
    # chunks a killed run may have left for a file it never recorded.
    to_delete = (set(records) - kept) | {c.path for c in to_index} | in_flight if records or in_flight else set()
    return _Plan(to_index=to_index, to_delete=to_delete, unchanged=unchanged)


def _up_to_date(meta: IndexMeta, plan: _Plan, commit: str | None, worktree: bool) -> bool:
    nothing_to_do = not plan.to_index and not plan.to_delete
    return nothing_to_do and meta.complete and meta.commit == commit and meta.worktree == worktree


def _meta_payload(meta: IndexMeta, in_flight: list[str] | None = None) -> dict[str, Any]:
    if in_flight is not None:
        meta = meta.model_copy(update={"in_flight": in_flight})
    return {**meta.model_dump(mode="json"), "record": "meta"}


def _top_level_symbols(chunks: list[Chunk]) -> list[SymbolRef]:
    symbols = [
        SymbolRef(name=c.symbol, kind=c.kind, line=c.start_line)
        for c in chunks
        if c.symbol and c.parent is None and c.kind in _SYMBOL_KINDS
    ]
    return symbols[:MAX_SYMBOLS]

