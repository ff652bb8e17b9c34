"""The text protocol for models without tool calling: edit blocks, READ requests and a DONE marker in plain text.

    path/to/file.py
    <<<<<<< SEARCH
    exact lines
    =======
    new lines
    >>>>>>> REPLACE

An empty SEARCH creates the file. `READ path` or `READ path 10-40` asks for a file; a line `DONE` says the task is
finished. Parsing is forgiving about what small models do (code fences around blocks, a file name in backticks or
bold, stray spaces, 5 to 9 marker characters, a missing file name repeated from the previous block) and strict about
what would be unsafe to guess (a block without its markers is reported back, never half-applied). The parsed
actions become ordinary ToolCalls, so they take the ToolBox's safety path exactly as native tool calls do.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from aetherflow.llm.types import ToolCall

_SEARCH = re.compile(r"^\s*<{5,9}\s*SEARCH\b.*$")
_DIVIDER = re.compile(r"^\s*={5,9}\s*$")
_REPLACE = re.compile(r"^\s*>{5,9}\s*REPLACE\b.*$")
_FENCE = re.compile(r"^\s*(```|~~~)")
_READ = re.compile(
    r"^\s*[`*]*READ[`*]*:?\s+[`'\"]?(?P<path>[^\s`'\"]+)[`'\"]?"
    r"(?:\s+(?:lines?\s+)?(?P<start>\d+)\s*(?:-|to|:|\.\.)\s*(?P<end>\d+))?\s*$"
)
_DONE = re.compile(r"^\s*[`*#]*\s*DONE[`*.!]*\s*$")
_NAME_PREFIX = re.compile(r"^(?:#+\s*|(?:file|path|filename)\s*:\s*)", re.IGNORECASE)
# Characters of a plausible file path; a line such as `foo.bar()` or `x=1` is code, not a file name. Forms the
# safety check refuses (`C:\\x`, `..\\x`, `~/x`, `%2e%2e/x`, a NUL byte) count as names too: taken for prose,
# their block would silently go to the previous block's file; as names, the model is told why they are refused.
_PATH_CHARS = re.compile(r"^(?:[A-Za-z]:)?[\w.\-/+@\\~%\0]+$")
_BARE_NAMES = {"Makefile", "Dockerfile", "LICENSE", "Procfile", "Gemfile", "Rakefile", "Jenkinsfile"}


@dataclass(frozen=True)
class EditBlock:
    """Replace `search` with `replace` in `path`; an empty `search` creates the file with `replace`."""

    path: str
    search: str
    replace: str


@dataclass(frozen=True)
class ReadRequest:
    """Show the model `path`, optionally only lines start to end."""

    path: str
    start_line: int | None = None
    end_line: int | None = None


Action = EditBlock | ReadRequest


@dataclass
class ParsedReply:
    """What a reply asked for, in order, plus the problems found and the prose around the actions."""

    actions: list[Action] = field(default_factory=list)
    done: bool = False
    errors: list[str] = field(default_factory=list)
    prose: str = ""

    @property
    def edits(self) -> list[EditBlock]:
        return [a for a in self.actions if isinstance(a, EditBlock)]


def clean_path(line: str) -> str | None:
    """The file name a line announces ("`app/x.py`", "**app/x.py**", "File: app/x.py:"), or None if it is prose."""
    name = _NAME_PREFIX.sub("", line.strip()).strip().strip("`*'\"").rstrip(":").strip().strip("`*'\"")
    if not _PATH_CHARS.match(name) or len(name) > 500:
        return None
    if "." in name or "/" in name or "\\" in name or name in _BARE_NAMES:
        return name
    return None


def _block_text(lines: list[str]) -> str:
    """Lines of a SEARCH or REPLACE section as text; blank-only sections are empty, others end with a newline."""
    if not any(line.strip() for line in lines):
        return ""
    return "\n".join(lines) + "\n"


class _Parser:
    def __init__(self, text: str) -> None:
        self.lines = text.replace("\r\n", "\n").split("\n")
        self.index = 0
        self.reply = ParsedReply()
        self.candidate: str | None = None  # the last line that could name the next block's file
        self.last_path: str | None = None
        self.prose: list[str] = []

    def parse(self) -> ParsedReply:
        while self.index < len(self.lines):
            line = self.lines[self.index]
            self.index += 1
            if _SEARCH.match(line):
                self._edit_block()
            elif _READ.match(line):
                self._read(line)
            elif _DONE.match(line):
                self.reply.done = True
            elif _DIVIDER.match(line) or _REPLACE.match(line):
                self.reply.errors.append(f"line {self.index}: a '{line.strip()}' marker without its "
                                         "<<<<<<< SEARCH line before it was ignored")
            elif not _FENCE.match(line):
                if line.strip():
                    self.candidate = line
                self.prose.append(line)
        self.reply.prose = "\n".join(self.prose).strip()
        return self.reply

    def _edit_block(self) -> None:
        start = self.index
        path = clean_path(self.candidate) if self.candidate else None
        if path is not None and self.prose and self.prose[-1] == self.candidate:
            self.prose.pop()  # the file name line is part of the block, not of the prose
        path = path or self.last_path
        self.candidate = None
        search = self._section(_DIVIDER)
        replace = self._section(_REPLACE) if search is not None else None
        if search is None or replace is None:
            missing = "=======" if search is None else ">>>>>>> REPLACE"
            self.reply.errors.append(f"the edit block starting at line {start} has no '{missing}' line; it was "
                                     "not applied. Write the whole block again.")
            return
        if path is None:
            self.reply.errors.append(f"the edit block starting at line {start} names no file; write the file path "
                                     "on the line just before <<<<<<< SEARCH. It was not applied.")
            return
        self.last_path = path
        self.reply.actions.append(EditBlock(path=path, search=_block_text(search), replace=_block_text(replace)))

    def _section(self, end: re.Pattern[str]) -> list[str] | None:
        """Lines up to the `end` marker (consumed), or None when the text ends or a new block starts first."""
        collected: list[str] = []
        while self.index < len(self.lines):
            line = self.lines[self.index]
            if _SEARCH.match(line):
                return None
            self.index += 1
            if end.match(line):
                return collected
            collected.append(line)
        return None

    def _read(self, line: str) -> None:
        found = _READ.match(line)
        assert found is not None
        start, end = found.group("start"), found.group("end")
        self.reply.actions.append(ReadRequest(
            path=found.group("path"), start_line=int(start) if start else None, end_line=int(end) if end else None
        ))


def parse_reply(text: str) -> ParsedReply:
    """Every edit block, READ request and DONE marker of a model's reply, in order, with parse problems."""
    return _Parser(text).parse()


def to_tool_call(action: Action, call_id: str) -> ToolCall:
    """The ToolBox call that carries out `action` (an empty SEARCH becomes create_file)."""
    if isinstance(action, ReadRequest):
        arguments: dict[str, object] = {"path": action.path}
        if action.start_line is not None:
            arguments["start_line"] = action.start_line
        if action.end_line is not None:
            arguments["end_line"] = action.end_line
        return ToolCall(id=call_id, name="read_file", arguments=json.dumps(arguments))
    if not action.search:
        return ToolCall(id=call_id, name="create_file",
                        arguments=json.dumps({"path": action.path, "content": action.replace}))
    return ToolCall(id=call_id, name="edit_file",
                    arguments=json.dumps({"path": action.path, "search": action.search, "replace": action.replace}))


def describe(action: Action) -> str:
    """A short label for an action in the feedback message."""
    if isinstance(action, ReadRequest):
        lines = f" {action.start_line}-{action.end_line}" if action.start_line and action.end_line else ""
        return f"READ {action.path}{lines}"
    return f"{'create' if not action.search else 'edit'} {action.path}"
