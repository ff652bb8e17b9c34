"""What the index records about itself, stored inside the store (so a Qdrant server shares it with the team).

Two kinds of vectorless records sit beside the chunks:
- one `IndexMeta`: the embedding model, its dimension, the chunker version, and the commit the index fully
  holds. `complete` is False while an update runs and the final header is written last, so a run killed
  half-way never leaves the index claiming a commit it does not hold; `in_flight` names the files whose
  chunks may be half written.
- one `FileRecord` per file, written after all of that file's chunks: a file is indexed only once its record
  exists, which is what makes an interrupted run resumable file by file.
"""

from __future__ import annotations

import time
import uuid
from typing import Literal

from pydantic import BaseModel, Field

from aetherflow.index.files import SkippedFile

META_FORMAT = 1
RecordKind = Literal["chunk", "file", "meta"]

_RECORD_NAMESPACE = uuid.UUID("2b6f1d0c-8a3e-5f47-b1c9-7d2e4a9f0c63")
META_ID = str(uuid.uuid5(_RECORD_NAMESPACE, "aetherflow:index-meta"))


def file_record_id(path: str) -> str:
    """The id of a file's record: one per path, overwritten when the file changes."""
    return str(uuid.uuid5(_RECORD_NAMESPACE, f"file:{path}"))


class IndexMeta(BaseModel):
    """The index's own header."""

    format: int = META_FORMAT
    embedding_model: str
    dim: int
    chunker_version: str
    complete: bool = False
    """False while an update runs (or after one was interrupted): the index then claims no commit."""
    commit: str | None = None
    """The commit whose files the index fully holds when `complete` (None in a repository with no commits)."""
    target: str | None = None
    """The commit an unfinished update was heading for."""
    worktree: bool = False
    """The last complete update also took uncommitted changes."""
    in_flight: list[str] = Field(default_factory=list)
    files: int = 0
    chunks: int = 0
    updated: float = Field(default_factory=time.time)


class SymbolRef(BaseModel):
    """A top-level definition of a file, for the repository map."""

    name: str
    kind: str
    line: int


class FileRecord(BaseModel):
    """One file as the index holds it: its blob, its chunks' count and top-level symbols, or why it is skipped."""

    path: str
    blob_sha: str
    language: str | None = None
    chunks: int = 0
    lines: int = 0
    symbols: list[SymbolRef] = Field(default_factory=list)
    skip: SkippedFile | None = None
    """Set when the file's content was skipped (binary, invalid UTF-8, generated): remembered per blob so
    unchanged skipped files are not read again."""
