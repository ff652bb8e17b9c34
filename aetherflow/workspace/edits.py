"""Search/replace edits as models write them: exact first, then tolerant of whitespace and indentation.

A failed edit raises EditError whose message is written for the model: what was not found, the closest lines
in the file with their numbers, and how to fix the search text. An edit is never applied to a guessed place:
every tolerant match must still be unique.
"""

from __future__ import annotations

import difflib
from typing import Literal, NamedTuple

MatchKind = Literal["exact", "trailing_whitespace", "indentation", "new_file"]

# Files longer than this are not scanned for a 'closest match' hint (the hint is a courtesy, not a search).
_HINT_MAX_LINES = 20_000
_HINT_SHOWN_LINES = 8


class EditError(Exception):
    """An edit or file operation the model asked for could not be done; the message tells it how to fix that."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class EditResult(NamedTuple):
    """The edited text, how the search text matched, and the 1-based first line of the replaced region."""

    text: str
    match: MatchKind
    line: int


def apply_search_replace(text: str, search: str, replace: str, *, path: str | None = None) -> str:
    """Return `text` with `search` replaced by `replace` (see `search_replace` for the rules)."""
    return search_replace(text, search, replace, path=path).text


def search_replace(text: str, search: str, replace: str, *, path: str | None = None) -> EditResult:
    """Apply one search/replace block and say how it matched.

    Order: exact (must be unique; otherwise the number of matches is reported), then line by line ignoring
    trailing whitespace, then ignoring a consistent change of leading indentation (the replacement is
    re-indented to the file's indentation). An empty search on an empty file writes `replace`. A file whose
    line endings are all CRLF keeps CRLF, whatever the model sent.
    """
    crlf = "\r\n" in text and text.count("\r\n") == text.count("\n")
    if crlf:
        text = text.replace("\r\n", "\n")
    search = search.replace("\r\n", "\n")
    replace = replace.replace("\r\n", "\n")
    result = _search_replace_lf(text, search, replace, path or "the file")
    if crlf:
        return result._replace(text=result.text.replace("\n", "\r\n"))
    return result


def _search_replace_lf(text: str, search: str, replace: str, where: str) -> EditResult:
    if not search.strip():
        if text.strip():
            raise EditError(
                f"The search text is empty but {where} is not empty. Put the exact lines to change in the "
                "search text (read the file first), or create a new file instead."
            )
        return EditResult(replace, "new_file", 1)
    count = text.count(search)
    if count == 1:
        at = text.index(search)
        return EditResult(text[:at] + replace + text[at + len(search) :], "exact", text.count("\n", 0, at) + 1)
    if count > 1:
        raise EditError(_ambiguous_message(text, search, count, where))
    lines = text.split("\n")
    wanted = _block_lines(search)
    for kind in ("trailing_whitespace", "indentation"):
        starts = _find_blocks(lines, wanted, kind)
        if len(starts) == 1:
            return _replace_block(lines, starts[0], wanted, _block_lines(replace), kind)
        if len(starts) > 1:
            raise EditError(_ambiguous_message(text, search, len(starts), where, [s + 1 for s in starts]))
    raise EditError(not_found_message(text, search, where))


def _block_lines(block: str) -> list[str]:
    """Lines of a search or replace block; a final newline does not make an extra empty line."""
    return block[:-1].split("\n") if block.endswith("\n") else block.split("\n")


def _indent(line: str) -> str:
    return line[: len(line) - len(line.lstrip(" \t"))]


def _common_indent(lines: list[str]) -> str:
    indents = [_indent(line) for line in lines if line.strip()]
    if not indents:
        return ""
    prefix = indents[0]
    for ind in indents[1:]:
        while not ind.startswith(prefix):
            prefix = prefix[:-1]
    return prefix


def _dedented(lines: list[str]) -> list[str]:
    prefix = _common_indent(lines)
    return [line.rstrip()[len(prefix) :] if line.strip() else "" for line in lines]


def _find_blocks(lines: list[str], wanted: list[str], kind: str) -> list[int]:
    """Start indexes where `wanted` matches `lines` under the tolerance `kind`."""
    size = len(wanted)
    if kind == "trailing_whitespace":
        target = [w.rstrip() for w in wanted]
        return [i for i in range(len(lines) - size + 1) if [x.rstrip() for x in lines[i : i + size]] == target]
    target = _dedented(wanted)
    first = target[0].strip()
    return [
        i
        for i in range(len(lines) - size + 1)
        if lines[i].strip() == first and _dedented(lines[i : i + size]) == target
    ]


def _replace_block(lines: list[str], start: int, wanted: list[str], new: list[str], kind: str) -> EditResult:
    if kind == "indentation":
        old_prefix = _common_indent(wanted)
        file_prefix = _common_indent(lines[start : start + len(wanted)])
        new = [_reindent(line, old_prefix, file_prefix) for line in new]
    edited = lines[:start] + new + lines[start + len(wanted) :]
    return EditResult("\n".join(edited), kind, start + 1)  # type: ignore[arg-type]


def _reindent(line: str, old_prefix: str, new_prefix: str) -> str:
    if not line.strip():
        return ""
    if line.startswith(old_prefix):
        return new_prefix + line[len(old_prefix) :]
    return new_prefix + line.lstrip(" \t")


def _ambiguous_message(text: str, search: str, count: int, where: str, starts: list[int] | None = None) -> str:
    if starts is None:
        starts, pos = [], text.find(search)
        while pos != -1 and len(starts) < 10:
            starts.append(text.count("\n", 0, pos) + 1)
            pos = text.find(search, pos + 1)
    shown = ", ".join(str(n) for n in starts[:10])
    return (
        f"The search text matches {count} places in {where} (starting at lines {shown}). Include more "
        "surrounding lines in the search text so that it matches exactly one place."
    )


def not_found_message(text: str, search: str, where: str) -> str:
    """The message for a search text that is not in the file: the closest lines and how to fix the search."""
    lines = text.split("\n")
    wanted = _block_lines(search)
    head = f"The search text was not found in {where}."
    advice = (
        "The search text must match the file's lines exactly (differences in trailing whitespace and in "
        "indentation are tolerated). Read the file again with read_file and copy the lines to change exactly."
    )
    best = _closest_block(lines, wanted)
    if best is None:
        return f"{head}\n{advice}"
    start, ratio = best
    window = lines[start : start + max(1, min(len(wanted), _HINT_SHOWN_LINES))]
    numbered = "\n".join(f"{start + i + 1:>5} | {line}" for i, line in enumerate(window))
    end = start + len(window)
    parts = [head, f"The closest lines are {start + 1}-{end} ({ratio:.0%} similar):", numbered]
    diff = _first_difference(lines[start : start + len(wanted)], wanted, start)
    if diff:
        parts.append(diff)
    parts.append(advice)
    return "\n".join(parts)


def _closest_block(lines: list[str], wanted: list[str]) -> tuple[int, float] | None:
    """Start and similarity of the window most like `wanted`: rank starts by their first line, then compare."""
    if not lines or len(lines) > _HINT_MAX_LINES or not any(w.strip() for w in wanted):
        return None
    anchor = next(w.strip() for w in wanted if w.strip())
    offset = next(i for i, w in enumerate(wanted) if w.strip())
    matcher = difflib.SequenceMatcher(autojunk=False)
    matcher.set_seq2(anchor)
    scored: list[tuple[float, int]] = []
    for i, line in enumerate(lines):
        matcher.set_seq1(line.strip())
        if matcher.real_quick_ratio() >= 0.3 and matcher.quick_ratio() >= 0.3:
            scored.append((matcher.ratio(), max(0, i - offset)))
    candidates = sorted(scored, reverse=True)[:5]
    target = "\n".join(w.strip() for w in wanted)
    best: tuple[int, float] | None = None
    for _, start in candidates:
        window = "\n".join(x.strip() for x in lines[start : start + len(wanted)])
        ratio = difflib.SequenceMatcher(None, window, target, autojunk=False).ratio()
        if best is None or ratio > best[1]:
            best = (start, ratio)
    return best if best is not None and best[1] >= 0.4 else None


def _first_difference(window: list[str], wanted: list[str], start: int) -> str:
    for i, (have, want) in enumerate(zip(window, wanted, strict=False)):
        if have.strip() != want.strip():
            line = start + i + 1
            return f"First difference: line {line} is {have.strip()!r} but the search text has {want.strip()!r}."
    if len(window) < len(wanted):
        return "The search text continues past the end of the file."
    return ""
