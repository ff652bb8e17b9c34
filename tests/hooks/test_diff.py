"""Parsing the reviewed diff: added line numbers, tricky lines and paths, truncation with a note."""

from __future__ import annotations

from hook_support import git, stage

from aetherflow.review.diff import Diff, parse_diff, staged_diff, truncated_text

DIFF = """diff --git a/x.py b/x.py
--- a/x.py
+++ b/x.py
@@ -1,2 +1,4 @@
 a = 1
-b = 2
+b = 3
+++ not a header
+print(b)
\\ No newline at end of file
diff --git a/gone.py b/gone.py
deleted file mode 100644
--- a/gone.py
+++ /dev/null
@@ -1 +0,0 @@
-x
diff --git a/img.png b/img.png
new file mode 100644
Binary files /dev/null and b/img.png differ
"""


def test_parse_added_lines_and_kinds() -> None:
    files = {f.path: f for f in parse_diff(DIFF)}
    assert [(a.line, a.text) for a in files["x.py"].added] == [(2, "b = 3"), (3, "++ not a header"), (4, "print(b)")]
    assert files["gone.py"].deleted and not files["gone.py"].added
    assert files["img.png"].binary


def test_unusual_paths_and_first_commit(tmp_path, hook_env) -> None:
    repo = tmp_path / "fresh"
    repo.mkdir()
    git(repo, hook_env, "init", "-q", "-b", "main")
    stage(repo, hook_env, {"dir with space/tést.py": "v = 1\n"})
    diff = staged_diff(repo)  # no HEAD yet: everything staged is new
    assert diff.paths() == {"dir with space/tést.py"}
    assert diff.files[0].added[0].line == 1


def test_truncation_keeps_whole_lines_and_says_so() -> None:
    text = "".join(f"+line {i}\n" for i in range(1000))
    cut, truncated = truncated_text(Diff(source="s", text=text, files=[]), 1000)
    assert truncated and len(cut) < 1200 and "[diff truncated:" in cut
    assert all(line.startswith(("+line", "[diff", "")) for line in cut.splitlines())
