"""Chunks made from lines alone: overlapping windows for any text, heading sections for Markdown.

These are the fallback when no grammar applies or parsing fails, and the way oversized definitions are cut,
so they must accept anything: empty text, one enormous line, binary-looking noise.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from aetherflow.index.models import Chunk


@dataclass(frozen=True)
class ChunkLimits:
    """Sizes that shape chunks. Changing a default changes chunk boundaries: bump CHUNKER_VERSION."""

    max_definition_lines: int = 200
    """A function or class header longer than this is cut into windows that keep its symbol."""
    small_class_lines: int = 40
    """A class at most this long stays one chunk; a longer one is split into a header and its members."""
    window_lines: int = 60
    """Lines per window for plain text and for cut definitions."""
    window_overlap: int = 10
    """Lines shared by consecutive windows, so text cut at a boundary is found whole in one of them."""
    max_chunk_chars: int = 12_000
    """A window never holds more characters; a longer single line is cut into pieces."""


DEFAULT_LIMITS = ChunkLimits()

Span = tuple[int, int, str]
"""(start_line, end_line, text) with 1-based inclusive lines."""


def line_windows(lines: list[str], first: int, last: int, limits: ChunkLimits = DEFAULT_LIMITS) -> list[Span]:
    """Overlapping windows over lines `first..last` (1-based, inclusive), skipping blank-only windows."""
    spans: list[Span] = []
    start = first
    while start <= last:
        end = _window_end(lines, start, last, limits)
        if end == start and len(lines[start - 1]) > limits.max_chunk_chars:
            spans.extend(_long_line_pieces(lines[start - 1], start, limits.max_chunk_chars))
            start += 1
            continue
        spans.extend(_trimmed(lines, start, end))
        if end >= last:
            break
        start = max(end - limits.window_overlap + 1, start + 1)
    return spans


def _trimmed(lines: list[str], start: int, end: int) -> list[Span]:
    """The window without its leading and trailing blank lines (none at all when it is blank)."""
    while start <= end and not lines[start - 1].strip():
        start += 1
    while end >= start and not lines[end - 1].strip():
        end -= 1
    return [(start, end, "\n".join(lines[start - 1 : end]))] if start <= end else []


def _window_end(lines: list[str], start: int, last: int, limits: ChunkLimits) -> int:
    """The last line of the window starting at `start`: bounded by line count and by characters."""
    end = min(start + limits.window_lines - 1, last)
    size = 0
    for number in range(start, end + 1):
        size += len(lines[number - 1]) + 1
        if size > limits.max_chunk_chars:
            return max(number - 1, start)
    return end


def _long_line_pieces(line: str, number: int, max_chars: int) -> list[Span]:
    """Cut one over-long line (minified code, a data blob) into pieces that all point at that line."""
    return [
        (number, number, line[i : i + max_chars])
        for i in range(0, len(line), max_chars)
        if line[i : i + max_chars].strip()
    ]


def window_chunks(path: str, language: str, lines: list[str], limits: ChunkLimits = DEFAULT_LIMITS) -> list[Chunk]:
    """The whole file as overlapping line windows."""
    return [
        Chunk(path=path, language=language, kind="window", start_line=s, end_line=e, text=t)
        for s, e, t in line_windows(lines, 1, len(lines), limits)
    ]


def spans_to_chunks(spans: list[Span], template: Chunk) -> list[Chunk]:
    """Copies of `template` with each span's lines and text (the symbol and signature are kept)."""
    return [template.model_copy(update={"start_line": s, "end_line": e, "text": t}) for s, e, t in spans]


_HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.+?)[ \t#]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")


def markdown_chunks(path: str, lines: list[str], limits: ChunkLimits = DEFAULT_LIMITS) -> list[Chunk]:
    """One "section" chunk per heading (ATX headings outside fenced code); long sections as windows.

    A heading followed directly by a deeper one (a title over its first subsection) is merged into that
    subsection, so no chunk holds a heading alone. The parent is the nearest enclosing heading.
    """
    headings = _markdown_headings(lines)
    chunks: list[Chunk] = []
    starts = [number for number, _, _ in headings]
    if not starts or starts[0] > 1:
        starts.insert(0, 1)
        headings.insert(0, (1, 0, ""))
    pending_start: int | None = None
    trail: list[tuple[int, str]] = []  # (level, title) of enclosing headings
    for index, (number, level, title) in enumerate(headings):
        end = headings[index + 1][0] - 1 if index + 1 < len(headings) else len(lines)
        while trail and trail[-1][0] >= level > 0:
            trail.pop()
        parent = trail[-1][1] if trail else None
        if level:
            trail.append((level, title))
        start = pending_start or number
        body = "\n".join(lines[number:end])
        if level and not body.strip() and index + 1 < len(headings) and headings[index + 1][1] > level:
            pending_start = start
            continue
        pending_start = None
        template = Chunk(path=path, language="markdown", kind="section", symbol=title or None, parent=parent,
                         start_line=start, end_line=end, text="")
        chunks.extend(spans_to_chunks(line_windows(lines, start, end, limits), template))
    return chunks


def _markdown_headings(lines: list[str]) -> list[tuple[int, int, str]]:
    """(line number, level, title) of each ATX heading, ignoring lines inside fenced code blocks."""
    found: list[tuple[int, int, str]] = []
    fence: str | None = None
    for number, line in enumerate(lines, start=1):
        opening = _FENCE.match(line)
        if opening:
            marker = opening.group(1)
            if fence is None:
                fence = marker[0] * 3
            elif marker.startswith(fence):
                fence = None
            continue
        if fence is None:
            match = _HEADING.match(line)
            if match:
                found.append((number, len(match.group(1)), match.group(2).strip()))
    return found

