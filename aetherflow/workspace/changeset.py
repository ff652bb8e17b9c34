"""Change sets: per-file unified diffs split into hunks, and applying any subset of those hunks exactly.

Hunks come from difflib's grouped opcodes over lines that keep their endings, so applying a subset rebuilds the
text byte for byte (CRLF and a missing final newline included): accepted hunks take their lines from
`new_text`, everything else comes from `old_text`.
"""

from __future__ import annotations

import difflib
from typing import Literal

from pydantic import BaseModel, Field

FileStatus = Literal["added", "modified", "deleted"]
CONTEXT_LINES = 3
_NO_NEWLINE = "\\ No newline at end of file"


class Hunk(BaseModel):
    """One hunk of a unified diff. Starts are 1-based as in a diff header (a zero count starts one line before)."""

    index: int
    header: str
    old_start: int
    old_count: int
    new_start: int
    new_count: int
    lines: list[str] = Field(default_factory=list)  # ' ', '-', '+' prefixed, without the final LF


class FileChange(BaseModel):
    """The change to one file between the run's base and its worktree."""

    path: str
    status: FileStatus
    binary: bool = False
    old_text: str | None = None
    new_text: str | None = None
    hunks: list[Hunk] = Field(default_factory=list)
    added: int = 0
    removed: int = 0
    # For binary files (no text): the git blob of the new content in the repository's object store.
    new_blob: str | None = None
    # The git mode of the new file ('100755' for an executable), None for a deletion.
    new_mode: str | None = "100644"

    def diff(self) -> str:
        """This change as a unified diff with a/ and b/ headers (git-style, so `git apply` accepts it)."""
        head = [f"diff --git a/{self.path} b/{self.path}"]
        if self.status == "added":
            head.append(f"new file mode {self.new_mode or '100644'}")
        elif self.status == "deleted":
            head.append("deleted file mode 100644")
        if self.binary:
            return "\n".join([*head, f"Binary files a/{self.path} and b/{self.path} differ"]) + "\n"
        if not self.hunks:
            return "\n".join(head) + "\n"
        old = "/dev/null" if self.status == "added" else f"a/{self.path}"
        new = "/dev/null" if self.status == "deleted" else f"b/{self.path}"
        body = [f"--- {old}", f"+++ {new}"]
        for hunk in self.hunks:
            body.append(hunk.header)
            body.extend(hunk.lines)
        return "\n".join([*head, *body]) + "\n"


class ChangeSet(BaseModel):
    """Every file a run changed, against the base the user saw when it began."""

    run_id: str
    base_commit: str | None = None
    files: list[FileChange] = Field(default_factory=list)
    # Protected paths (git, CI, hook or AetherFlow configuration) the run tried to change or changed in its
    # worktree: never in `files`, so never applied, even with --yes; listed so the review can say so.
    held_back: list[str] = Field(default_factory=list)

    def diff(self) -> str:
        """The whole change set as one unified diff."""
        return "".join(change.diff() for change in self.files)

    def paths(self) -> list[str]:
        """The changed paths, in order."""
        return [change.path for change in self.files]

    def get(self, path: str) -> FileChange | None:
        """The change to `path`, if any."""
        return next((change for change in self.files if change.path == path), None)

    @property
    def added(self) -> int:
        """Lines added over every file."""
        return sum(change.added for change in self.files)

    @property
    def removed(self) -> int:
        """Lines removed over every file."""
        return sum(change.removed for change in self.files)


def _header_start(start: int, count: int) -> int:
    """Unified-diff convention: an empty range names the line before it."""
    return start if count == 0 else start + 1


def _strip_eol(line: str) -> str:
    # A CR stays, as in `git diff`: the diff must apply to a CRLF file, and a CRLF-only change must be visible.
    return line.removesuffix("\n")


def _prefixed(prefix: str, lines: list[str]) -> list[str]:
    out: list[str] = []
    for line in lines:
        out.append(prefix + _strip_eol(line))
        if not line.endswith("\n"):
            out.append(_NO_NEWLINE)
    return out


def _hunk(index: int, group: list[tuple[str, int, int, int, int]], old: list[str], new: list[str]) -> Hunk:
    i1, i2, j1, j2 = group[0][1], group[-1][2], group[0][3], group[-1][4]
    body: list[str] = []
    for tag, a1, a2, b1, b2 in group:
        if tag == "equal":
            body.extend(_prefixed(" ", old[a1:a2]))
            continue
        body.extend(_prefixed("-", old[a1:a2]))
        body.extend(_prefixed("+", new[b1:b2]))
    old_start, new_start = _header_start(i1, i2 - i1), _header_start(j1, j2 - j1)
    header = f"@@ -{old_start},{i2 - i1} +{new_start},{j2 - j1} @@"
    return Hunk(
        index=index,
        header=header,
        old_start=old_start,
        old_count=i2 - i1,
        new_start=new_start,
        new_count=j2 - j1,
        lines=body,
    )


def make_hunks(old_text: str, new_text: str) -> list[Hunk]:
    """The hunks turning `old_text` into `new_text`, with three lines of context."""
    old, new = old_text.splitlines(keepends=True), new_text.splitlines(keepends=True)
    matcher = difflib.SequenceMatcher(None, old, new, autojunk=False)
    groups = matcher.get_grouped_opcodes(CONTEXT_LINES)
    return [_hunk(i, group, old, new) for i, group in enumerate(groups)]


def build_file_change(
    path: str,
    old_text: str | None,
    new_text: str | None,
    *,
    binary: bool = False,
    status: FileStatus | None = None,
    new_blob: str | None = None,
    new_mode: str | None = "100644",
) -> FileChange:
    """Describe the change of `path` from `old_text` (None: did not exist) to `new_text` (None: deleted).

    Binary files pass `binary=True` and an explicit `status`; they get no hunks.
    """
    if status is None:
        status = "added" if old_text is None else "deleted" if new_text is None else "modified"
    if binary:
        return FileChange(path=path, status=status, binary=True, new_blob=new_blob, new_mode=new_mode)
    hunks = make_hunks(old_text or "", new_text or "")
    added = sum(1 for h in hunks for line in h.lines if line.startswith("+"))
    removed = sum(1 for h in hunks for line in h.lines if line.startswith("-"))
    return FileChange(
        path=path,
        status=status,
        old_text=old_text,
        new_text=new_text,
        hunks=hunks,
        added=added,
        removed=removed,
        new_mode=None if status == "deleted" else new_mode,
    )


def _offset(start: int, count: int) -> int:
    """0-based index of a hunk range from its header start (see `_header_start`)."""
    return start if count == 0 else start - 1


def apply_hunks(old_text: str, change: FileChange, accepted: set[int]) -> str:
    """`old_text` with only the `accepted` hunks of `change` applied (all: new_text; none: old_text).

    Raises ValueError for an index the change does not have, so a stale selection is not silently ignored.
    """
    unknown = accepted - {h.index for h in change.hunks}
    if unknown:
        raise ValueError(f"{change.path} has no hunk {sorted(unknown)} (it has {len(change.hunks)})")
    old = old_text.splitlines(keepends=True)
    new = (change.new_text or "").splitlines(keepends=True)
    out: list[str] = []
    cursor = 0
    for hunk in change.hunks:
        if hunk.index not in accepted:
            continue
        o1 = _offset(hunk.old_start, hunk.old_count)
        n1 = _offset(hunk.new_start, hunk.new_count)
        out.extend(old[cursor:o1])
        out.extend(new[n1 : n1 + hunk.new_count])
        cursor = o1 + hunk.old_count
    out.extend(old[cursor:])
    return "".join(out)
