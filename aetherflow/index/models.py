"""The chunk: the unit the repository index stores, embeds and returns.

This module is the contract between the chunker (which produces chunks) and the store/indexer (which embeds
and persists them). It imports nothing heavy.
"""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import BaseModel, ConfigDict

# Bump when chunk boundaries or chunk text (dense_text / sparse_text) change: the indexer compares it with the
# version recorded in the collection's metadata and rebuilds the whole index when they differ.
CHUNKER_VERSION = "1"

ChunkKind = Literal["function", "method", "class", "module", "section", "window"]

# A fixed namespace so that chunk ids are the same across processes and machines.
_CHUNK_NAMESPACE = uuid.UUID("6f1c3f0e-4b9e-5a57-9d1e-2f6a0c7b8e31")

# The dense embedder (all-MiniLM-L6-v2) truncates at 256 word pieces; code averages roughly 3 to 4 characters
# per word piece, so text beyond this bound would only cost tokenising time.
DENSE_TEXT_MAX_CHARS = 1200
# Sparse vectors have no such limit, but a bound keeps giant generated functions from dominating.
SPARSE_TEXT_MAX_CHARS = 20_000


class Chunk(BaseModel):
    """One contiguous span of a file, with what the chunker learned about it."""

    model_config = ConfigDict(extra="forbid")

    path: str
    """Repo-relative POSIX path."""
    language: str
    """"python", "javascript", "typescript", "go", "rust", "java", "c", "cpp", "ruby", "php", "markdown",
    "text", ..."""
    kind: ChunkKind
    symbol: str | None = None
    """Function, class or method name (section title for Markdown); None for windows and module code."""
    parent: str | None = None
    """Enclosing class, impl or module symbol, when any."""
    signature: str | None = None
    docstring: str | None = None
    start_line: int
    """1-based, inclusive."""
    end_line: int
    """1-based, inclusive."""
    text: str
    """The source lines of the chunk."""
    blob_sha: str = ""
    """Git blob of the file (filled by the indexer)."""
    commit: str = ""
    """Commit the index was built at (filled by the indexer)."""

    def chunk_id(self) -> str:
        """A deterministic UUID string identifying this chunk of this version of the file."""
        key = f"{self.path}\x00{self.start_line}\x00{self.end_line}\x00{self.blob_sha}\x00{self.kind}"
        return str(uuid.uuid5(_CHUNK_NAMESPACE, key))

    def qualified_symbol(self) -> str | None:
        """`Parent.symbol` when the chunk has an enclosing symbol, else the symbol alone."""
        if self.symbol and self.parent:
            return f"{self.parent}.{self.symbol}"
        return self.symbol

    def dense_text(self) -> str:
        """The text given to the dense embedder: where the chunk is, what it is, then its code.

        The header goes first because the embedder truncates from the end: the path, enclosing symbol,
        signature and docstring describe the chunk's purpose better than its last lines do.
        """
        header = [self.path.replace("/", " / ")]
        if self.parent:
            header.append(f"{self.parent}")
        if self.signature:
            header.append(self.signature)
        elif self.symbol:
            header.append(self.symbol)
        if self.docstring and self.docstring.split("\n", 1)[0] not in self.text:
            header.append(self.docstring)  # a window past the start of its definition: the text lacks it
        body = _strip_leading_signature(self.text, self.signature)
        return _bounded("\n".join(header) + "\n" + body, DENSE_TEXT_MAX_CHARS)

    def sparse_text(self) -> str:
        """The text given to the sparse encoder: path, enclosing and own symbol, then the code.

        Names are repeated on purpose: the sparse encoder counts terms, so the symbol's own words weigh more
        than the words of everything it calls.
        """
        names = " ".join(n for n in (self.parent, self.symbol, self.symbol) if n)
        parts = [self.path, names, self.signature or "", self.docstring or "", self.text]
        return _bounded("\n".join(p for p in parts if p), SPARSE_TEXT_MAX_CHARS)


def _strip_leading_signature(text: str, signature: str | None) -> str:
    """Drop the signature line from the body when the header already carries it."""
    if not signature:
        return text
    first, _, rest = text.lstrip().partition("\n")
    return rest if first.strip() == signature.strip() else text


def _bounded(text: str, limit: int) -> str:
    """Cut `text` at `limit` characters, at a line end when one is near."""
    if len(text) <= limit:
        return text
    cut = text.rfind("\n", limit // 2, limit)
    return text[: cut if cut > 0 else limit]
