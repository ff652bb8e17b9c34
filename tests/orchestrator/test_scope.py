"""What a whole-file agent is shown, and which files it may write."""

from __future__ import annotations

from pathlib import Path

import pytest
from pipeline_support import make_repo

from aetherflow.orchestrator.plan import TaskSpec
from aetherflow.orchestrator.scope import budget_chars, default_target, files_in_scope, is_test_path


@pytest.mark.parametrize(("path", "is_test"), [
    ("bowling_test.py", True), ("test_auth.py", True), ("tests/helpers.py", True), ("src/app.spec.ts", True),
    ("web/button.test.js", True), ("bowling.py", False), ("app/testing_utils.py", False), ("contest.py", False),
])
def test_test_files_are_told_by_the_usual_conventions(path: str, is_test: bool) -> None:
    assert is_test_path(path) is is_test


def _task(description: str, files: list[str] | None = None) -> TaskSpec:
    return TaskSpec(id="t", type="module_generation", description=description, context_files=files or [])


def test_a_small_repository_is_shown_whole_with_tests_as_reference(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", {"bowling.py": "class Game:\n    pass\n", "bowling_test.py": "import bowling\n"})

    scope = files_in_scope(repo, _task("Score a bowling game."), [], budget=10_000)

    assert [(f.path, f.editable) for f in scope] == [("bowling.py", True), ("bowling_test.py", False)]
    assert default_target(scope, _task("x")) == "bowling.py"


def test_a_request_to_write_tests_makes_test_files_editable(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", {"calc.py": "x = 1\n", "test_calc.py": "import calc\n"})

    scope = files_in_scope(repo, _task("Add tests for calc.py"), [], budget=10_000)

    assert all(f.editable for f in scope)


def test_in_a_large_repository_only_named_and_retrieved_files_are_shown_within_the_budget(tmp_path: Path) -> None:
    files = {f"pkg/m{i}.py": f"# module {i}\n" + "x = 1\n" * 200 for i in range(20)}
    repo = make_repo(tmp_path / "r", files)

    scope = files_in_scope(repo, _task("Fix the bug in pkg/m3.py"), ["pkg/m7.py", "pkg/gone.py"], budget=3000)

    assert [(f.path, f.editable) for f in scope] == [("pkg/m3.py", True), ("pkg/m7.py", False)]
    assert default_target(scope, _task("x")) == "pkg/m3.py"


def test_the_budget_leaves_room_for_the_reply() -> None:
    assert budget_chars(8192, 2048) < budget_chars(32768, 2048)
    assert budget_chars(1000, 4000) == 2000


def test_dotfiles_and_protected_files_are_not_added_to_fill_a_small_repository(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", {"calc.py": "x = 1\n", ".gitignore": "*.pyc\n", "aetherflow.toml": "[checks]\n",
                                      ".github/workflows/ci.yml": "on: push\n"})

    scope = files_in_scope(repo, _task("Make x two."), [], budget=10_000)
    named = files_in_scope(repo, _task("Explain aetherflow.toml"), [], budget=10_000)

    assert [f.path for f in scope] == ["calc.py"]
    assert [(f.path, f.editable) for f in named if f.path == "aetherflow.toml"] == [("aetherflow.toml", False)]


def test_files_the_request_names_are_the_only_ones_to_write(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", {"app/auth.py": "def login(): ...\n", "app/server.py": "import auth\n"})

    scope = files_in_scope(repo, _task("Add logout_all to app/auth.py"), [], budget=10_000)

    assert {f.path: f.editable for f in scope} == {"app/auth.py": True, "app/server.py": False}
    assert default_target(scope, _task("x")) == "app/auth.py"
