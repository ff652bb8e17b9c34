"""The grep tool's engine: a regular expression over the text files of a worktree, bounded in every direction.

Files come from git (tracked plus untracked-but-not-ignored), so ignored files such as `.env` or build output are
never searched. Symlinks are skipped rather than followed, so a link pointing out of the repository is never read.
The pattern is a model's input, possibly hostile: it runs on the `regex` engine with a time limit, because the
standard `re` module cannot interrupt catastrophic backtracking.
"""

from __future__ import annotations

import fnmatch
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import regex

MAX_FILE_BYTES = 1_000_000
MAX_LINE_CHARS = 300
MATCH_SCAN_CHARS = 2000
TIME_LIMIT_S = 5.0
_BINARY_SNIFF_BYTES = 8192
# The end of a cut line that is only part of a word: dropped, so a token (a key, say) is never shown in part,
# where the redactor could no longer recognise it.
_PARTIAL_WORD = regex.compile(r"[^\s,;:'\"=()\[\]{}<>]+$")


class GrepError(Exception):
    """The pattern or the search failed; the message is written for the model."""


@dataclass
class GrepOutcome:
    """Matching lines as `path:line: text`, and why the search stopped early, if it did."""

    lines: list[str] = field(default_factory=list)
    files_searched: int = 0
    stopped: str = ""


def shorten_line(line: str) -> str:
    """`line` cut to about MAX_LINE_CHARS, never in the middle of a word or token."""
    if len(line) <= MAX_LINE_CHARS:
        return line
    head = line[:MAX_LINE_CHARS]
    if not line[MAX_LINE_CHARS].isspace():
        head = _PARTIAL_WORD.sub("", head)
    return head + " [...]"


def compile_pattern(pattern: str) -> regex.Pattern[str]:
    """The compiled pattern, or GrepError saying what is wrong with it."""
    try:
        return regex.compile(pattern)
    except regex.error as exc:
        raise GrepError(
            f"invalid regular expression {pattern!r}: {exc}. Escape special characters such as ( [ . * with a "
            "backslash, or search for a simpler literal."
        ) from exc


def repo_files(root: Path) -> list[str]:
    """Repository-relative paths of tracked and untracked-not-ignored files under `root`, sorted."""
    try:
        listed = subprocess.run(
            ["git", "-C", str(root), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            capture_output=True, check=True, timeout=30,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise GrepError(f"could not list the repository's files ({exc}); use list_dir and read_file instead") from exc
    names = {name for name in listed.stdout.decode("utf-8", "replace").split("\0") if name}
    return sorted(names)


def glob_matches(rel: str, path_glob: str | None) -> bool:
    """Whether `rel` matches `path_glob`; a glob without '/' also matches the file name alone ('*.py')."""
    if not path_glob:
        return True
    glob = path_glob.strip().removeprefix("./")
    if fnmatch.fnmatchcase(rel, glob):
        return True
    if glob.endswith("/") and rel.startswith(glob):
        return True
    return "/" not in glob and fnmatch.fnmatchcase(rel.rsplit("/", 1)[-1], glob)


def _read_text_file(path: Path) -> str | None:
    """The file's text, or None when it is a symlink, not a regular file, too big or binary."""
    try:
        if path.is_symlink() or not path.is_file() or path.stat().st_size > MAX_FILE_BYTES:
            return None
        data = path.read_bytes()
    except OSError:
        return None
    if b"\0" in data[:_BINARY_SNIFF_BYTES]:
        return None
    return data.decode("utf-8", "replace")


def _inside(path: Path, root: Path) -> bool:
    # Any parent folder may be a symlink out of the repository; resolve before trusting the path.
    try:
        return path.resolve().is_relative_to(root.resolve())
    except OSError:
        return False


def grep_files(
    root: Path, pattern: str, *, path_glob: str | None, max_results: int, time_limit_s: float = TIME_LIMIT_S
) -> GrepOutcome:
    """Search every text file of the worktree at `root` for `pattern`, one line at a time (blocking)."""
    compiled = compile_pattern(pattern)
    deadline = time.monotonic() + time_limit_s
    outcome = GrepOutcome()
    for rel in repo_files(root):
        if not glob_matches(rel, path_glob):
            continue
        path = root / rel
        if not _inside(path, root):
            continue
        text = _read_text_file(path)
        if text is None:
            continue
        outcome.files_searched += 1
        if _search_text(compiled, rel, text, outcome, max_results, deadline):
            break
    return outcome


def _search_text(
    compiled: regex.Pattern[str], rel: str, text: str, outcome: GrepOutcome, max_results: int, deadline: float
) -> bool:
    """Append the matches of one file to `outcome`; True when the search must stop (cap or time)."""
    for number, line in enumerate(text.splitlines(), start=1):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            outcome.stopped = f"stopped after {TIME_LIMIT_S:.0f} s; use a simpler pattern or a path_glob"
            return True
        try:
            found = compiled.search(line[:MATCH_SCAN_CHARS], timeout=remaining)
        except TimeoutError:
            outcome.stopped = f"stopped after {TIME_LIMIT_S:.0f} s; the pattern is too slow, simplify it"
            return True
        if found is None:
            continue
        outcome.lines.append(f"{rel}:{number}: {shorten_line(line)}")
        if len(outcome.lines) >= max_results:
            outcome.stopped = f"stopped at {max_results} matches; narrow the pattern or the path_glob"
            return True
    return False


def format_outcome(pattern: str, outcome: GrepOutcome) -> str:
    """The tool's answer: the matches, then a note on how the search ended."""
    if not outcome.lines:
        note = f" ({outcome.stopped})" if outcome.stopped else ""
        return f"no match for {pattern!r} in {outcome.files_searched} files{note}"
    lines = list(outcome.lines)
    lines.append(f"[{len(outcome.lines)} matches; {outcome.stopped}]" if outcome.stopped
                 else f"[{len(outcome.lines)} matches in {outcome.files_searched} files searched]")
    return "\n".join(lines)
