"""The whole-file edit format: the model replies with the complete new content of each file it changes.

    app/auth.py
    ```python
    ...the whole file...
    ```

Small models copy a short file far more reliably than they write SEARCH blocks that match byte for byte (Aider
measured the same on its benchmark and uses this format for weak models). Parsing accepts the forms small models
produce: the file name on the line before the fence (bare, in backticks, bold, or after "File:"), or in the fence's
info string (```python app/auth.py). A block that names no file goes to the task's one default file when there is
exactly one, and is reported back otherwise: a guess between several files would be unsafe. When a reply holds
several unnamed blocks (the solution, then a usage example), the longest is taken as the file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from aetherflow.orchestrator.text_protocol import clean_path

_FENCE_OPEN = re.compile(r"^\s*(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`]*?)\s*$")


@dataclass(frozen=True)
class WholeFile:
    """The complete new content of `path`."""

    path: str
    content: str


@dataclass
class WholeReply:
    """The files a reply wrote, the problems found, and the prose around them."""

    files: list[WholeFile] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    prose: str = ""


@dataclass
class _Block:
    path: str | None
    lines: list[str]
    start: int
    closed: bool


def _info_path(info: str) -> str | None:
    """A file name in a fence's info string: "python app/x.py" or "app/x.py" (a bare language is not one)."""
    words = info.split()
    for word in reversed(words):
        name = clean_path(word)
        if name is not None and ("/" in name or "." in name):
            return name
    return None


def _blocks(text: str) -> tuple[list[_Block], list[str]]:
    """Every fenced block with the file name announced for it, and the prose lines outside blocks."""
    lines = text.replace("\r\n", "\n").split("\n")
    blocks: list[_Block] = []
    prose: list[str] = []
    candidate: str | None = None
    index = 0
    while index < len(lines):
        line = lines[index]
        opened = _FENCE_OPEN.match(line)
        index += 1
        if opened is None:
            if line.strip():
                candidate = line
            prose.append(line)
            continue
        fence = opened.group("fence")
        path = _info_path(opened.group("info")) or (clean_path(candidate) if candidate else None)
        if path is not None and prose and prose[-1].strip() == (candidate or "").strip():
            prose.pop()  # the file name line belongs to the block
        body: list[str] = []
        closed = False
        while index < len(lines):
            inner = lines[index]
            index += 1
            if inner.strip() == fence[0] * len(fence) or inner.strip() == fence:
                closed = True
                break
            body.append(inner)
        blocks.append(_Block(path=path, lines=body, start=index - len(body) - 1, closed=closed))
        candidate = None
    return blocks, prose


def parse_whole_reply(text: str, default_path: str | None) -> WholeReply:
    """The files of a whole-file reply. `default_path` receives the unnamed block when it is the only target."""
    blocks, prose = _blocks(text)
    reply = WholeReply(prose="\n".join(prose).strip())
    named = [b for b in blocks if b.path is not None]
    unnamed = [b for b in blocks if b.path is None]
    for block in named:
        if not block.closed:
            reply.errors.append(f"the block for {block.path} starting at line {block.start} has no closing fence; "
                                "it was not applied. Write the whole file again, ending with ```.")
            continue
        reply.files.append(WholeFile(path=block.path or "", content=_content(block.lines)))
    if unnamed and not named:
        if default_path is None:
            reply.errors.append("a code block names no file; write the file path on the line just before each "
                                "block. Nothing was applied.")
        else:
            longest = max(unnamed, key=lambda b: sum(len(line) for line in b.lines))
            if longest.closed or len(unnamed) == 1:
                reply.files.append(WholeFile(path=default_path, content=_content(longest.lines)))
    return reply


def _content(lines: list[str]) -> str:
    """A block's lines as file content ending with one newline (empty stays empty)."""
    text = "\n".join(lines).rstrip("\n")
    return text + "\n" if text.strip() else ""
