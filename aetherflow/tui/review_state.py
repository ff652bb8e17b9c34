"""The review's decisions: which files and hunks of a change set the user accepts, independent of any widget.

Everything starts accepted; the user rejects what they do not want, and the confirmation lists exactly what the
resulting `Selection` will apply. A file without hunks (binary, empty, mode-only) is accepted or rejected whole.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from aetherflow.workspace.apply import Selection
from aetherflow.workspace.changeset import ChangeSet, FileChange

FileDecision = Literal["accepted", "rejected", "partial"]


class FilePlan(BaseModel):
    """What will happen to one file: its accepted hunks (None: the whole file) and the lines they add and remove."""

    path: str
    status: str
    hunks: list[int] | None
    total_hunks: int
    added: int
    removed: int

    def line(self) -> str:
        """One line of the confirmation, e.g. `app/auth.py: hunks 1, 3 of 3 (+4 -1)`."""
        counts = f"(+{self.added} -{self.removed})"
        if self.hunks is None or len(self.hunks) == self.total_hunks:
            what = {"added": "new file", "deleted": "delete file"}.get(self.status, "whole file")
            return f"{self.path}: {what} {counts}"
        numbers = ", ".join(str(i + 1) for i in self.hunks)
        return f"{self.path}: hunk{'s' if len(self.hunks) > 1 else ''} {numbers} of {self.total_hunks} {counts}"


class ApplyPlan(BaseModel):
    """Exactly what applying the current decisions writes, and what it leaves alone."""

    files: list[FilePlan]
    rejected: list[str]

    @property
    def empty(self) -> bool:
        """True when nothing at all would be written."""
        return not self.files

    def lines(self) -> list[str]:
        """The confirmation text, one line per file, rejected files last."""
        out = [plan.line() for plan in self.files]
        if self.rejected:
            out.append("left unchanged: " + ", ".join(self.rejected))
        return out


def _counts(change: FileChange, accepted: set[int]) -> tuple[int, int]:
    lines = [line for hunk in change.hunks if hunk.index in accepted for line in hunk.lines]
    return sum(1 for x in lines if x.startswith("+")), sum(1 for x in lines if x.startswith("-"))


class ReviewState:
    """Accept/reject decisions per file and per hunk over one change set."""

    def __init__(self, changeset: ChangeSet) -> None:
        self.changeset = changeset
        self._accepted: dict[str, set[int]] = {c.path: {h.index for h in c.hunks} for c in changeset.files}
        self._whole: dict[str, bool] = {c.path: True for c in changeset.files if not c.hunks}

    def _change(self, path: str) -> FileChange:
        change = self.changeset.get(path)
        if change is None:
            raise KeyError(f"{path} is not in the change set of run {self.changeset.run_id}")
        return change

    def hunk_accepted(self, path: str, index: int) -> bool:
        """True when hunk `index` of `path` is accepted."""
        return index in self._accepted[path]

    def set_hunk(self, path: str, index: int, accepted: bool) -> None:
        """Accept or reject one hunk."""
        if index not in {h.index for h in self._change(path).hunks}:
            raise KeyError(f"{path} has no hunk {index}")
        (self._accepted[path].add if accepted else self._accepted[path].discard)(index)

    def toggle_hunk(self, path: str, index: int) -> None:
        """Flip one hunk's decision."""
        self.set_hunk(path, index, not self.hunk_accepted(path, index))

    def set_file(self, path: str, accepted: bool) -> None:
        """Accept or reject every hunk of one file (or the whole file when it has none)."""
        change = self._change(path)
        self._accepted[path] = {h.index for h in change.hunks} if accepted else set()
        if not change.hunks:
            self._whole[path] = accepted

    def set_all(self, accepted: bool) -> None:
        """Accept or reject everything."""
        for change in self.changeset.files:
            self.set_file(change.path, accepted)

    def file_decision(self, path: str) -> FileDecision:
        """Whether `path` is taken whole, left alone, or taken in part."""
        change = self._change(path)
        if not change.hunks:
            return "accepted" if self._whole[path] else "rejected"
        chosen = len(self._accepted[path])
        return "accepted" if chosen == len(change.hunks) else "rejected" if chosen == 0 else "partial"

    def selection(self) -> Selection:
        """The decisions as apply's Selection: "all" for whole files, hunk sets for partial ones."""
        selection: Selection = {}
        for change in self.changeset.files:
            decision = self.file_decision(change.path)
            if decision == "accepted":
                selection[change.path] = "all"
            elif decision == "partial":
                selection[change.path] = set(self._accepted[change.path])
        return selection

    def plan(self) -> ApplyPlan:
        """What `selection()` will write, file by file, for the confirmation."""
        files, rejected = [], []
        for change in self.changeset.files:
            decision = self.file_decision(change.path)
            if decision == "rejected":
                rejected.append(change.path)
                continue
            chosen = sorted(self._accepted[change.path])
            added, removed = _counts(change, set(chosen)) if change.hunks else (change.added, change.removed)
            files.append(FilePlan(
                path=change.path, status=change.status, hunks=chosen if change.hunks else None,
                total_hunks=len(change.hunks), added=added, removed=removed,
            ))  # fmt: skip
        return ApplyPlan(files=files, rejected=rejected)

    def accepted_paths(self) -> list[str]:
        """Files that will change (whole or in part)."""
        return [plan.path for plan in self.plan().files]

    def rejected_paths(self) -> list[str]:
        """Files that will be left alone."""
        return self.plan().rejected
