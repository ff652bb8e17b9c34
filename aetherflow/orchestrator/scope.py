"""Which files a whole-file agent is shown in full, and which of them it is meant to change.

A whole-file agent cannot ask for files (small models do not use READ requests well), so everything it needs is
put in its prompt up front, within a character budget taken from the model's context window:
1. the files the subtask names (its `context_files`, and paths written in its description);
2. the files of the retrieved chunks for the subtask, best first;
3. in a small repository, every other tracked text file, smallest first.
When the subtask names files, only those are to be written and the others are reference. Test files are shown as
reference unless the subtask is about tests: the project's tests are how the work is
judged, and a model that rewrites them to pass is not doing the task.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from aetherflow.orchestrator.plan import TaskSpec
from aetherflow.workspace._fs import is_binary
from aetherflow.workspace._git import run_git, split_z
from aetherflow.workspace.safety import is_protected

# Characters per token, roughly, for code: used to turn a context window into a character budget.
CHARS_PER_TOKEN = 3.5
_TEST_NAME = re.compile(r"(^test_.*|.*_test|.*_tests|.*\.(test|spec))\.[A-Za-z0-9]+$")
_TEST_DIRS = {"test", "tests", "__tests__", "spec"}
# A request to change tests themselves ("add tests for", "update the unit tests"), as opposed to one judged by them.
_ABOUT_TESTS = re.compile(r"\b(add|write|update|fix|create|extend|change)\b[^.\n]{0,40}\b(tests?|specs?)\b",
                          re.IGNORECASE)
_PATHISH = re.compile(r"[\w./-]+\.[A-Za-z0-9]+")


@dataclass(frozen=True)
class ScopeFile:
    """A file shown to the agent in full; `editable` is False for reference files (tests)."""

    path: str
    text: str
    editable: bool


def is_test_path(path: str) -> bool:
    """A test file by the usual conventions (test_x.py, x_test.py, x.test.ts, x.spec.js, tests/...)."""
    pure = PurePosixPath(path)
    return bool(_TEST_NAME.match(pure.name)) or any(part in _TEST_DIRS for part in pure.parts[:-1])


def budget_chars(context_window: int, reply_tokens: int) -> int:
    """How many characters of files fit beside the instructions and the reply: about half of what remains."""
    return max(2000, int((context_window - reply_tokens) * CHARS_PER_TOKEN * 0.5))


def files_in_scope(root: Path, task: TaskSpec, hit_paths: list[str], budget: int) -> list[ScopeFile]:
    """The files to show for `task` in the worktree at `root`, within `budget` characters, most relevant first."""
    tracked = _Tracked(root)
    mentioned = [*task.context_files, *_paths_in(task.description, tracked.paths)]
    named = [p for p in mentioned if tracked.text(p) is not None]
    ranked = _unique([*named, *[p for p in hit_paths if tracked.text(p) is not None]])
    if tracked.fits(budget):
        # The rest of a small repository, without dotfiles and files no agent may write (aetherflow.toml, CI):
        # a small model copies back whatever it is shown, and those would only cost tokens.
        rest = [p for p in tracked.texts() if not is_protected(p) and not PurePosixPath(p).name.startswith(".")]
        ranked = _unique([*ranked, *sorted(rest, key=lambda p: (is_test_path(p), len(tracked.texts()[p]), p))])
    tests_editable = bool(_ABOUT_TESTS.search(task.description))
    # When the subtask names its files, those are the ones to change; the rest is context. (A model shown a whole
    # small repository as writable rewrites files the request never mentioned.)
    writable = set(named) or set(tracked.paths)
    chosen: list[ScopeFile] = []
    used = 0
    for path in ranked:
        text = tracked.text(path) or ""
        if used + len(text) > budget:
            continue
        used += len(text)
        if is_test_path(path):
            editable = tests_editable and not is_protected(path)
        else:
            editable = path in writable and not is_protected(path)
        chosen.append(ScopeFile(path=path, text=text, editable=editable))
    return chosen


def default_target(scope: list[ScopeFile], task: TaskSpec) -> str | None:
    """The one file an unnamed code block is meant for: the only editable file in scope, or the only one the
    subtask names; None when that would be a guess."""
    editable = [f.path for f in scope if f.editable]
    if len(editable) == 1:
        return editable[0]
    named = [p for p in task.context_files if p in editable]
    return named[0] if len(named) == 1 else None


def _paths_in(text: str, tracked: list[str]) -> list[str]:
    """Tracked paths (or unique file names of tracked paths) that `text` mentions."""
    known = set(tracked)
    by_name: dict[str, list[str]] = {}
    for path in tracked:
        by_name.setdefault(PurePosixPath(path).name, []).append(path)
    found: list[str] = []
    for word in _PATHISH.findall(text):
        word = word.strip("./")
        if word in known:
            found.append(word)
        elif len(by_name.get(word, [])) == 1:
            found.append(by_name[word][0])
    return found


class _Tracked:
    """The worktree's tracked files, read only when asked: a large repository is never read whole."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.paths = split_z(run_git(root, "ls-files", "-z"))
        self._known = set(self.paths)
        self._texts: dict[str, str | None] = {}

    def text(self, rel: str) -> str | None:
        """The file's content when it is a tracked UTF-8 text file (not a link), else None; read once."""
        if rel not in self._texts:
            self._texts[rel] = _read_text(self.root / rel) if rel in self._known else None
        return self._texts[rel]

    def fits(self, budget: int) -> bool:
        """Whether every tracked text file together fits `budget` characters; stops reading once it cannot."""
        total = 0
        for rel in self.paths:
            total += len(self.text(rel) or "")
            if total > budget:
                return False
        return True

    def texts(self) -> dict[str, str]:
        """Every tracked text file read so far (all of them after `fits` returned True), with its content."""
        return {rel: text for rel, text in self._texts.items() if text is not None}


def _read_text(path: Path) -> str | None:
    if path.is_symlink() or not path.is_file():
        return None
    data = path.read_bytes()
    if is_binary(data):
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))
