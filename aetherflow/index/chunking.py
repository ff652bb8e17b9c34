"""Source text → chunks: by syntax where a grammar exists, by Markdown headings, else by line windows.

`chunk_source` never raises on content: a file the grammar cannot parse cleanly is chunked as windows, so one
odd file never stops an index run.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from aetherflow.index.chunk_windows import DEFAULT_LIMITS, ChunkLimits, markdown_chunks, window_chunks
from aetherflow.index.languages import SPECS, detect_language, grammar_for
from aetherflow.index.models import Chunk

if TYPE_CHECKING:
    from tree_sitter import Parser

__all__ = ["ChunkLimits", "chunk_source", "detect_language"]

# tree-sitter parsers hold parsing state, so each thread keeps its own (the indexer may chunk in threads).
_parsers = threading.local()


def _parser(grammar: str) -> Parser:
    cache: dict[str, Parser] | None = getattr(_parsers, "cache", None)
    if cache is None:
        cache = _parsers.cache = {}
    if grammar not in cache:
        # Imported here: the language pack loads grammar libraries, which `aether --help` must not pay for.
        from tree_sitter_language_pack import get_parser

        cache[grammar] = get_parser(grammar)  # type: ignore[arg-type]
    return cache[grammar]


def chunk_source(path: str, text: str, language: str | None = None,
                 limits: ChunkLimits = DEFAULT_LIMITS) -> list[Chunk]:
    """Cut one file's text into chunks, in file order.

    `path` is repo-relative (POSIX); `language` overrides the guess from the file name. CRLF line ends are
    read as LF; line numbers count "\\n" as git does. Empty and whitespace-only files give no chunks.
    """
    text = text.replace("\r\n", "\n")
    if not text.strip():
        return []
    language = language or detect_language(path) or "text"
    lines = text.split("\n")
    if language == "markdown":
        return markdown_chunks(path, lines, limits)
    grammar = grammar_for(path, language)
    if grammar is not None:
        chunks = _syntax_chunks(path, language, grammar, text, lines, limits)
        if chunks is not None:
            return chunks
    return window_chunks(path, language, lines, limits)


def _syntax_chunks(path: str, language: str, grammar: str, text: str, lines: list[str],
                   limits: ChunkLimits) -> list[Chunk] | None:
    """Chunks by syntax, or None when the file does not parse cleanly (the caller falls back to windows)."""
    from aetherflow.index.chunk_syntax import SyntaxChunker

    try:
        tree = _parser(grammar).parse(text.encode("utf-8", errors="replace"))
    except (LookupError, ValueError):  # a grammar missing from the pack, or the parser refusing the input
        return None
    if tree.root_node.has_error:
        return None
    try:
        return SyntaxChunker(path, language, SPECS[grammar], lines, limits).chunk(tree.root_node)
    except RecursionError:  # absurdly deep nesting of classes or namespaces
        return None
