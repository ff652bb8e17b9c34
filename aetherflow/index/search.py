"""The retrieval API for the CLI, the planner and `aether ask`: hybrid search and a compact repository map.

    retriever = Retriever(repo_root, settings.index)
    if retriever.exists():
        hits = retriever.search("where are budgets enforced", k=8, language="python")
        overview = retriever.repo_map(token_budget=800)
    retriever.close()

Search embeds the query (dense) and tokenises it like code (sparse); the store fuses both rankings with
reciprocal rank fusion. Heavy modules (fastembed, Qdrant) load on the first search, never on import.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from aetherflow.config.models import IndexConfig
from aetherflow.errors import RepoIndexError
from aetherflow.index.indexer import read_meta
from aetherflow.index.query_embedder import QueryEmbedder, query_embedder
from aetherflow.index.sparse import SparseEncoder, code_tokens
from aetherflow.index.state import FileRecord, IndexMeta
from aetherflow.index.store import SearchMode, Store, StoreFilter

CHARS_PER_TOKEN = 4
"""Rough size of a token in code and English, to fit the map in a budget without loading a tokenizer."""
MAP_SYMBOLS_PER_FILE = 12


class SearchHit(BaseModel):
    """One retrieved chunk."""

    path: str
    start_line: int
    end_line: int
    symbol: str | None
    parent: str | None
    kind: str
    language: str
    signature: str | None
    score: float
    text: str

    @property
    def location(self) -> str:
        return f"{self.path}:{self.start_line}"

    @property
    def qualified_symbol(self) -> str | None:
        if self.symbol and self.parent:
            return f"{self.parent}.{self.symbol}"
        return self.symbol


def normalise_language(name: str | None) -> str | None:
    """`py` → `python`, `ts` → `typescript`, ...: a file extension or a language name, as stored on chunks."""
    if not name:
        return None
    from aetherflow.index.chunking import detect_language

    lowered = name.lower().lstrip(".")
    return detect_language(f"x.{lowered}") or lowered


class Retriever:
    """Searches one repository's index. Opens the store on first use; `close()` lets other processes in."""

    def __init__(
        self,
        repo_root: Path,
        config: IndexConfig,
        environ: Mapping[str, str] | None = None,
        store: Store | None = None,
        embedder: QueryEmbedder | None = None,
        encoder: SparseEncoder | None = None,
    ) -> None:
        self.repo_root = repo_root
        self.config = config
        self.environ = environ
        self._store = store
        self._embedder = embedder
        self._encoder = encoder or SparseEncoder()
        self._meta: IndexMeta | None = None

    @property
    def store(self) -> Store:
        if self._store is None:
            from aetherflow.index.service import open_store

            self._store = open_store(self.config, self.repo_root, self.environ)
        return self._store

    def exists(self) -> bool:
        """True when an index has been built here (callers skip retrieval otherwise)."""
        return self.store.exists()

    def meta(self) -> IndexMeta:
        """The index header; a clear error when there is no index or it was built with another model."""
        if self._meta is None:
            meta = read_meta(self.store) if self.store.exists() else None
            if meta is None:
                raise RepoIndexError(
                    f"There is no index for {self.repo_root} yet.", "Build it with `aether index`."
                )
            if meta.embedding_model != self.config.embedding_model:
                raise RepoIndexError(
                    f"The index was built with {meta.embedding_model}, but index.embedding_model is now "
                    f"{self.config.embedding_model}.",
                    "Run `aether index`: it rebuilds the index for the new model.",
                )
            self._meta = meta
        return self._meta

    def search(
        self,
        query: str,
        k: int = 10,
        language: str | None = None,
        path_glob: str | None = None,
        mode: SearchMode = "hybrid",
    ) -> list[SearchHit]:
        """The `k` chunks that best match `query`, optionally in one language and under a path glob."""
        self.meta()
        flt = StoreFilter(language=normalise_language(language))
        if path_glob:
            flt.paths = self._paths_matching(path_glob)
        dense = self._embed(query) if mode != "sparse" else None
        sparse = self._encoder.encode_query(query) if mode != "dense" else None
        hits = self.store.search(dense, sparse, k, flt, mode)
        return [_to_hit(h.payload, h.score) for h in hits]

    def _embed(self, query: str) -> list[float]:
        if self._embedder is None:
            self._embedder = query_embedder(self.config)
        return self._embedder.embed_query(query)

    def _paths_matching(self, glob: str) -> list[str]:
        from pathspec import GitIgnoreSpec

        spec = GitIgnoreSpec.from_lines([glob])
        return [r.path for r in self.file_records() if r.skip is None and spec.match_file(r.path)]

    def file_records(self) -> list[FileRecord]:
        """Every file the index knows (skipped ones included, with their reason)."""
        return [
            FileRecord.model_validate({k: v for k, v in p.items() if k != "record"})
            for p in self.store.scroll_records("file")
        ]

    def repo_map(self, token_budget: int = 1000) -> str:
        """Files and their top-level symbols, most informative first, cut to about `token_budget` tokens.

        Files rank by how much they define (top-level symbols, then size), shallow paths before deep ones, and
        tests after the code they test, so a planner sees the core modules first.
        """
        self.meta()
        records = sorted(
            (r for r in self.file_records() if r.skip is None), key=lambda r: (-_map_rank(r), r.path)
        )
        budget = token_budget * CHARS_PER_TOKEN
        lines: list[str] = []
        used = 0
        for index, record in enumerate(records):
            line = _map_line(record)
            if used + len(line) + 1 > budget:
                rest = len(records) - index
                lines.append(f"… {rest} more file{'s' if rest != 1 else ''}")
                break
            lines.append(line)
            used += len(line) + 1
        return "\n".join(lines)

    def close(self) -> None:
        """Release the store so that an indexer in another process can open it."""
        if self._store is not None:
            self._store.close()
            self._store = None

    def __enter__(self) -> Retriever:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _to_hit(payload: dict[str, Any], score: float) -> SearchHit:
    return SearchHit(
        path=payload["path"],
        start_line=payload["start_line"],
        end_line=payload["end_line"],
        symbol=payload.get("symbol"),
        parent=payload.get("parent"),
        kind=payload.get("kind", "window"),
        language=payload.get("language", "text"),
        signature=payload.get("signature"),
        score=score,
        text=payload.get("text", ""),
    )


def _map_rank(record: FileRecord) -> float:
    depth = record.path.count("/")
    rank = 2.0 * len(record.symbols) + math.log2(record.lines + 1) - 0.5 * depth
    lowered = record.path.lower()
    if "test" in lowered or lowered.startswith(("docs/", "doc/", "examples/")):
        rank *= 0.5
    return rank


def _map_line(record: FileRecord) -> str:
    names = [s.name + ("()" if s.kind == "function" else "") for s in record.symbols[:MAP_SYMBOLS_PER_FILE]]
    more = len(record.symbols) - MAP_SYMBOLS_PER_FILE
    if more > 0:
        names.append(f"+{more}")
    head = f"{record.path} ({record.lines} lines)"
    return f"{head}: {', '.join(names)}" if names else head


def snippet(hit: SearchHit, query: str, max_lines: int = 8) -> tuple[int, list[str]]:
    """The lines of `hit` worth showing: a window around the line that shares most terms with `query`.

    Returns the first line's number and the lines.
    """
    lines = hit.text.split("\n")
    wanted = set(code_tokens(query))
    scores = [len(wanted.intersection(code_tokens(line))) for line in lines]
    best = max(range(len(lines)), key=lambda i: (scores[i], -i)) if wanted and any(scores) else 0
    start = max(0, min(best - max_lines // 3, len(lines) - max_lines))
    return hit.start_line + start, lines[start : start + max_lines]


def matching_words(line: str, query: str) -> list[str]:
    """The words of `line` that match a term of `query` (for highlighting), compared as code tokens."""
    import re

    wanted = set(code_tokens(query))
    words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", line))
    return sorted(w for w in words if wanted.intersection(code_tokens(w)))
