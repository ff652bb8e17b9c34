"""The diff under review: `git diff --cached` (the index, so a partially staged file is reviewed as staged) or a
commit range, parsed into the lines each file adds, with their line numbers in the new version.

Git runs with the caller's environment on purpose: during `git commit -a` or `git commit <paths>` git points
GIT_INDEX_FILE at a temporary index, and that index, not `.git/index`, is what is about to be committed.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from aetherflow.errors import UsageError

# Plain, stable output whatever the user's configuration: no colour, no external diff tool, no prefix tricks.
_GIT_DIFF = ["git", "-c", "core.quotePath=false", "-c", "diff.noprefix=false", "diff", "--no-color",
             "--no-ext-diff", "--unified=3", "--find-renames"]
_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")
_RANGE = re.compile(r"^[^\s-][^\s]*$")


class AddedLine(BaseModel):
    """One line the diff adds: its number in the new version of the file, and its text."""

    line: int
    text: str


class DiffFile(BaseModel):
    """One file of the diff."""

    path: str
    added: list[AddedLine] = Field(default_factory=list)
    binary: bool = False
    deleted: bool = False


class Diff(BaseModel):
    """A whole diff: its text (what a model reads) and its files (what the local scan reads)."""

    source: str
    text: str
    files: list[DiffFile] = Field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.text.strip()

    def paths(self) -> set[str]:
        return {f.path for f in self.files}


def staged_diff(repo_root: Path) -> Diff:
    """What `git commit` would commit now: the index against HEAD (against nothing on a first commit)."""
    return _diff(repo_root, ["--cached"], "staged changes")


def range_diff(repo_root: Path, revision_range: str) -> Diff:
    """The changes of a range such as `main..HEAD` or `A...B`."""
    if not _RANGE.match(revision_range):
        raise UsageError(
            f"'{revision_range}' is not a commit range.", "Give one such as main..HEAD or abc123..def456."
        )
    return _diff(repo_root, [revision_range], revision_range)


def _diff(repo_root: Path, args: list[str], source: str) -> Diff:
    try:
        done = subprocess.run([*_GIT_DIFF, *args, "--"], cwd=repo_root, capture_output=True, check=False)
    except FileNotFoundError as exc:
        raise UsageError("git is not installed or not on the PATH.", "Install git, then try again.") from exc
    if done.returncode != 0:
        detail = done.stderr.decode("utf-8", "replace").strip()
        raise UsageError(
            f"git diff {' '.join(args)} failed: {detail}", "Check the range, or run the command inside the repository."
        )
    text = done.stdout.decode("utf-8", "replace")
    return Diff(source=source, text=text, files=parse_diff(text))


Event = tuple[Literal["file", "target", "hunk", "add", "keep", "del", "binary"], str, int]


def _walk(text: str) -> Iterator[Event]:
    """The events of a unified git diff: (kind, line text, line number in the new version or 0).

    Hunk bodies are delimited by the counts in their `@@` header, so an added line that itself starts with
    "++ " or "diff --git" is never taken for a header.
    """
    old_left = new_left = new_line = 0
    for raw in text.split("\n"):
        if old_left > 0 or new_left > 0:
            mark = raw[:1]
            if mark == "+":
                yield "add", raw[1:], new_line
                new_line, new_left = new_line + 1, new_left - 1
            elif mark == "-":
                yield "del", raw[1:], 0
                old_left -= 1
            elif mark == "\\":
                continue  # "\ No newline at end of file"
            else:
                yield "keep", raw[1:], new_line
                new_line, new_left, old_left = new_line + 1, new_left - 1, old_left - 1
        elif raw.startswith("diff --git "):
            yield "file", raw, 0
        elif raw.startswith("+++ "):
            yield "target", raw[4:].removesuffix("\t"), 0  # git appends a tab to paths holding spaces
        elif raw.startswith("Binary files "):
            yield "binary", raw, 0
        elif match := _HUNK.match(raw):
            old_left = int(match.group(2) or 1) if match.group(2) != "0" else 0
            new_left = int(match.group(4) or 1) if match.group(4) != "0" else 0
            new_line = int(match.group(3))
            yield "hunk", raw, new_line


def parse_diff(text: str) -> list[DiffFile]:
    """The files of a unified git diff and the lines each one adds."""
    files: list[DiffFile] = []
    for kind, raw, line in _walk(text):
        if kind == "file":
            files.append(DiffFile(path=_path_from_header(raw)))
        elif not files:
            continue
        elif kind == "target":
            if raw == "/dev/null":
                files[-1].deleted = True
            else:
                files[-1].path = _unquote(raw)[2:]
        elif kind == "binary":
            files[-1].binary = True
        elif kind == "add":
            files[-1].added.append(AddedLine(line=line, text=raw))
    return files


def _path_from_header(header: str) -> str:
    """The new path from `diff --git a/x b/x` (used when no `+++` line follows: binary or mode-only changes)."""
    rest = header[len("diff --git "):]
    if rest.endswith('"'):
        return _unquote(rest[rest.rindex(' "') + 1:])[2:]
    return rest.partition(" b/")[2] or rest


def _unquote(path: str) -> str:
    """Git's C-style quoting ("a/t\\303\\251st.py") undone; unquoted paths come back as they are."""
    if not (path.startswith('"') and path.endswith('"')):
        return path
    body = path[1:-1].encode("latin-1", "backslashreplace").decode("unicode_escape")
    return body.encode("latin-1", "replace").decode("utf-8", "replace")


def numbered_text(text: str) -> str:
    """A diff rewritten for a model to read: a `### path` header per file, and every kept or added line prefixed
    with its line number in the new version, so the model can name lines without counting hunk offsets."""
    out: list[str] = []
    signs = {"add": "+", "keep": " ", "del": "-"}
    for kind, raw, line in _walk(text):
        if kind == "target":
            out.append(f"### {_unquote(raw)[2:] if raw != '/dev/null' else '(deleted file)'}")
        elif kind in ("hunk", "binary"):
            out.append(raw)
        elif kind in signs:
            out.append(f"{line if line else '':>6} {signs[kind]}{raw}")
    return "\n".join(out) + "\n"


def truncated_text(diff: Diff, max_chars: int) -> tuple[str, bool]:
    """The diff text cut at a line boundary to at most `max_chars` (with a note saying what was left out)."""
    if len(diff.text) <= max_chars:
        return diff.text, False
    cut = diff.text.rfind("\n", 0, max_chars)
    kept = diff.text[: cut if cut > 0 else max_chars]
    left = diff.text.count("\n", len(kept))
    files_kept = kept.count("\ndiff --git ") + int(kept.startswith("diff --git "))
    note = (
        f"\n[diff truncated: {left} more lines not shown; {files_kept} of {len(diff.files)} files shown at least "
        "in part. Review only what is shown.]\n"
    )
    return kept + note, True
