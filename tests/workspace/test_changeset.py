"""Change sets: hunks, unified diffs that git accepts, and applying any subset of hunks exactly."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aetherflow.workspace.changeset import ChangeSet, apply_hunks, build_file_change

OLD = "".join(f"line {i}\n" for i in range(1, 21))
NEW = OLD.replace("line 2\n", "line two\n").replace("line 18\n", "line 18\nline 18b\n")


def test_two_distant_changes_make_two_hunks_with_exact_diff() -> None:
    change = build_file_change("notes.txt", OLD, NEW)
    assert change.status == "modified"
    assert (change.added, change.removed) == (2, 1)
    assert [h.header for h in change.hunks] == ["@@ -1,5 +1,5 @@", "@@ -16,5 +16,6 @@"]
    assert change.diff() == (
        "diff --git a/notes.txt b/notes.txt\n--- a/notes.txt\n+++ b/notes.txt\n"
        "@@ -1,5 +1,5 @@\n line 1\n-line 2\n+line two\n line 3\n line 4\n line 5\n"
        "@@ -16,5 +16,6 @@\n line 16\n line 17\n line 18\n+line 18b\n line 19\n line 20\n"
    )


def test_apply_hunks_all_none_and_each() -> None:
    change = build_file_change("notes.txt", OLD, NEW)
    assert apply_hunks(OLD, change, {0, 1}) == NEW
    assert apply_hunks(OLD, change, set()) == OLD
    assert apply_hunks(OLD, change, {0}) == OLD.replace("line 2\n", "line two\n")
    assert apply_hunks(OLD, change, {1}) == OLD.replace("line 18\n", "line 18\nline 18b\n")


def test_unknown_hunk_index_is_an_error() -> None:
    change = build_file_change("notes.txt", OLD, NEW)
    with pytest.raises(ValueError, match="no hunk"):
        apply_hunks(OLD, change, {5})


def test_added_and_deleted_files() -> None:
    added = build_file_change("new.py", None, "a\nb")
    assert added.status == "added" and added.added == 2
    assert added.diff().splitlines()[:5] == [
        "diff --git a/new.py b/new.py", "new file mode 100644", "--- /dev/null", "+++ b/new.py", "@@ -0,0 +1,2 @@"
    ]
    assert added.diff().endswith("+b\n\\ No newline at end of file\n")
    deleted = build_file_change("old.py", "x\n", None)
    assert deleted.status == "deleted" and deleted.removed == 1
    assert "+++ /dev/null" in deleted.diff()


def test_binary_files_are_flagged_not_diffed() -> None:
    change = build_file_change("logo.png", None, None, binary=True, status="modified", new_blob="abc")
    assert change.binary and change.hunks == []
    assert change.diff().endswith("Binary files a/logo.png and b/logo.png differ\n")


def test_changeset_diff_is_accepted_by_git_apply(tmp_path: Path) -> None:
    """`git apply` of our diff on the old files yields exactly the new files."""
    files = {
        "notes.txt": (OLD, NEW),
        "crlf.txt": ("a\r\nb\r\nc\r\n", "a\r\nB\r\nc\r\n"),
        "tail.txt": ("x\ny", "x\ny\nz\n"),
        "added.py": (None, "print(1)\n"),
        "gone.py": ("print(0)\n", None),
    }
    for rel, (old, _) in files.items():
        if old is not None:
            (tmp_path / rel).write_bytes(old.encode())
    changeset = ChangeSet(run_id="r", files=[build_file_change(p, o, n) for p, (o, n) in files.items()])
    (tmp_path / "change.diff").write_bytes(changeset.diff().encode())
    proc = subprocess.run(["git", "apply", "change.diff"], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    for rel, (_, new) in files.items():
        if new is None:
            assert not (tmp_path / rel).exists()
        else:
            assert (tmp_path / rel).read_bytes() == new.encode()


_lines = st.lists(st.sampled_from(["a\n", "b\n", "c\n", "d\r\n", "\n", "e"]), max_size=30).map("".join)


@settings(max_examples=300, deadline=None)
@given(old=_lines, new=_lines, data=st.data())
def test_apply_hunks_property(old: str, new: str, data: st.DataObject) -> None:
    """All hunks give new_text, none gives old_text, and any subset equals applying its hunks one by one."""
    change = build_file_change("f", old, new)
    indexes = {h.index for h in change.hunks}
    assert apply_hunks(old, change, indexes) == new
    assert apply_hunks(old, change, set()) == old
    subset = data.draw(st.sets(st.sampled_from(sorted(indexes))) if indexes else st.just(set()))
    partial = apply_hunks(old, change, subset)
    # Hunks are independent: what a subset leaves is the old text outside them and the new text inside.
    rest = build_file_change("f", partial, new)
    assert len(rest.hunks) == len(indexes - subset)
    assert apply_hunks(partial, rest, {h.index for h in rest.hunks}) == new
