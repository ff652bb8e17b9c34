"""The agent tools against a real temporary git repository and its run Workspace: each tool's success and failure
messages, path safety, allowlisting, truncation, redaction, events, and the text protocol's translation into the
same tool calls."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from aetherflow.config.models import ChecksConfig
from aetherflow.events import Event, EventBus, ToolExecuted
from aetherflow.llm.redact import Redactor
from aetherflow.llm.types import ToolCall
from aetherflow.orchestrator import text_protocol
from aetherflow.orchestrator.tools import TOOL_SPECS, NO_INDEX, ToolBox, truncate_middle
from aetherflow.workspace.worktree import Workspace

ALL_TOOLS = list(TOOL_SPECS)
AUTH = "def login(user, password):\n    return user == 'admin'\n\n\ndef logout(user):\n    return True\n"


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


def make_repo(path: Path) -> Path:
    """A committed repository with an app package, a README, an ignored .env and a binary file."""
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.email", "dev@example.com")
    git(path, "config", "user.name", "Dev")
    (path / "app").mkdir()
    (path / "app" / "__init__.py").write_text("")
    (path / "app" / "auth.py").write_text(AUTH)
    (path / "app" / "models.py").write_text("class User:\n    name = 'admin'\n")
    (path / "README.md").write_text("# Demo\nThe login function lives in app/auth.py.\n")
    (path / ".gitignore").write_text(".env\n")
    (path / ".env").write_text("DATABASE_PASSWORD=login-secret\n")
    (path / "logo.bin").write_bytes(b"\x00\x01login\x00" * 10)
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "initial")
    return path


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo")


@pytest.fixture
def workspace(repo: Path) -> Iterator[Workspace]:
    ws = Workspace.create(repo, "run1")
    yield ws
    ws.remove()


@dataclass
class FakeCheck:
    name: str
    ok: bool
    output: str
    duration_s: float


class CheckRecorder:
    """A check runner that records what it was asked to run."""

    def __init__(self, ok: bool = True, output: str = "3 passed") -> None:
        self.calls: list[tuple[Path, str, str, float]] = []
        self.ok, self.output = ok, output

    async def __call__(self, root: Path, name: str, command: str, timeout_s: float) -> FakeCheck:
        self.calls.append((root, name, command, timeout_s))
        return FakeCheck(name=name, ok=self.ok, output=self.output, duration_s=0.25)


def make_box(workspace: Workspace, allowed: list[str] | None = None, **kwargs: object) -> ToolBox:
    checks = kwargs.pop("checks", ChecksConfig(commands={"tests": "pytest -q"}, timeout_s=30))
    return ToolBox(workspace, allowed if allowed is not None else ALL_TOOLS, checks, **kwargs)  # type: ignore[arg-type]


def call(name: str, arguments: dict | str | None = None, call_id: str = "c1") -> ToolCall:
    text = arguments if isinstance(arguments, str) else json.dumps(arguments or {})
    return ToolCall(id=call_id, name=name, arguments=text)


# ---- specs and allowlist ----------------------------------------------------------------------------------


def test_specs_cover_every_tool_and_only_the_allowed_ones_are_offered(workspace: Workspace) -> None:
    assert set(TOOL_SPECS) == {"read_file", "list_dir", "search_code", "grep", "edit_file", "create_file",
                               "delete_file", "run_check"}
    assert TOOL_SPECS["edit_file"].parameters["required"] == ["path", "search", "replace"]
    assert "anyOf" not in json.dumps(TOOL_SPECS["read_file"].parameters)
    box = make_box(workspace, ["grep", "read_file"])
    assert [s.name for s in box.specs()] == ["read_file", "grep"]


async def test_unknown_and_disallowed_tools_are_refused_with_the_available_list(workspace: Workspace) -> None:
    box = make_box(workspace, ["read_file"])
    unknown = await box.execute(call("shell", {"command": "rm -rf /"}))
    assert not unknown.ok
    assert "unknown tool 'shell'" in unknown.content and "read_file" in unknown.content
    disallowed = await box.execute(call("edit_file", {"path": "app/auth.py", "search": "a", "replace": "b"}))
    assert not disallowed.ok
    assert "not available to this agent" in disallowed.content
    assert (workspace.root / "app" / "auth.py").read_text() == AUTH


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ("{not json", "invalid arguments for read_file"),
        ("[1, 2]", "must be a JSON object"),
        ({}, "path: Field required"),
        ({"path": "app/auth.py", "start_line": 0}, "start_line"),
    ],
)
async def test_invalid_arguments_become_a_message(workspace: Workspace, arguments: dict | str, expected: str) -> None:
    result = await make_box(workspace).execute(call("read_file", arguments))
    assert not result.ok
    assert expected in result.content


# ---- reading ----------------------------------------------------------------------------------------------


async def test_read_file_whole_and_line_range(workspace: Workspace) -> None:
    box = make_box(workspace)
    whole = await box.execute(call("read_file", {"path": "app/auth.py"}))
    assert whole.ok and whole.content == AUTH
    part = await box.execute(call("read_file", {"path": "app/auth.py", "start_line": "5", "end_line": 6}))
    assert part.ok and part.content == "def logout(user):\n    return True\n"


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("missing.py", "There is no file 'missing.py'"),
        ("../../etc/passwd", "resolves outside the repository"),
        ("/etc/passwd", "is absolute"),
        ("~/.bashrc", "home folder"),
        ("app\\..\\..\\x", "resolves outside the repository"),
        ("logo.bin", "binary"),
    ],
)
async def test_read_file_failures(workspace: Workspace, path: str, expected: str) -> None:
    result = await make_box(workspace).execute(call("read_file", {"path": path}))
    assert not result.ok
    assert expected in result.content
    assert str(workspace.root) not in result.content


async def test_list_dir_lists_and_reports_a_missing_folder(workspace: Workspace) -> None:
    box = make_box(workspace)
    listing = await box.execute(call("list_dir", {}))
    assert listing.ok
    assert "app/" in listing.content.splitlines() and "README.md" in listing.content.splitlines()
    assert ".git" not in listing.content.splitlines()
    missing = await box.execute(call("list_dir", {"path": "nope"}))
    assert not missing.ok and "There is no folder 'nope'" in missing.content


async def test_search_code_without_index_and_with_one(workspace: Workspace) -> None:
    without = await make_box(workspace).execute(call("search_code", {"query": "login"}))
    assert not without.ok and without.content == NO_INDEX
    asked: list[tuple[str, int]] = []

    def search(query: str, k: int) -> list[str]:
        asked.append((query, k))
        return ["app/auth.py:1-2 login\ndef login(user, password):"]

    found = await make_box(workspace, search_code=search).execute(call("search_code", {"query": "login", "k": 3}))
    assert found.ok and found.content.startswith("app/auth.py:1-2 login")
    assert asked == [("login", 3)]


async def test_grep_finds_lines_skips_ignored_and_binary_files(workspace: Workspace) -> None:
    result = await make_box(workspace).execute(call("grep", {"pattern": r"login"}))
    assert result.ok
    lines = result.content.splitlines()
    assert "app/auth.py:1: def login(user, password):" in lines
    assert "README.md:2: The login function lives in app/auth.py." in lines
    assert ".env" not in result.content and "logo.bin" not in result.content


async def test_grep_glob_cap_no_match_and_invalid_regex(workspace: Workspace) -> None:
    box = make_box(workspace)
    only_py = await box.execute(call("grep", {"pattern": "login|logout", "path_glob": "*.py"}))
    assert only_py.ok and "README.md" not in only_py.content and "app/auth.py:5:" in only_py.content
    capped = await box.execute(call("grep", {"pattern": "e", "max_results": 2}))
    assert capped.ok and len([x for x in capped.content.splitlines() if ":" in x.split(" ")[0]]) == 2
    assert "stopped at 2 matches" in capped.content
    nothing = await box.execute(call("grep", {"pattern": "zzz_nowhere"}))
    assert nothing.ok and nothing.content.startswith("no match for 'zzz_nowhere'")
    invalid = await box.execute(call("grep", {"pattern": "login("}))
    assert not invalid.ok and "invalid regular expression" in invalid.content


# ---- writing ----------------------------------------------------------------------------------------------


async def test_edit_file_changes_the_worktree_not_the_users_tree(repo: Path, workspace: Workspace) -> None:
    box = make_box(workspace)
    result = await box.execute(call("edit_file", {
        "path": "app/auth.py", "search": "    return user == 'admin'\n", "replace": "    return False\n"}))
    assert result.ok, result.content
    assert result.changed_path == "app/auth.py" and box.changed_paths == ["app/auth.py"]
    assert "Edited app/auth.py at line 2" in result.content
    assert "return False" in (workspace.root / "app" / "auth.py").read_text()
    assert (repo / "app" / "auth.py").read_text() == AUTH
    assert git(repo, "status", "--porcelain") == ""


async def test_edit_file_not_found_returns_the_edit_error_text(workspace: Workspace) -> None:
    result = await make_box(workspace).execute(call("edit_file", {
        "path": "app/auth.py", "search": "def login(user, pasword):\n", "replace": "x\n"}))
    assert not result.ok
    assert "The search text was not found in app/auth.py" in result.content
    assert "def login(user, password)" in result.content  # the closest lines are shown
    assert result.changed_path is None


@pytest.mark.parametrize(
    ("tool", "arguments", "expected"),
    [
        ("edit_file", {"path": "../outside.txt", "search": "a", "replace": "b"}, "outside the repository"),
        ("create_file", {"path": "../outside.txt", "content": "pwned"}, "outside the repository"),
        ("create_file", {"path": "/tmp/aether-outside.txt", "content": "pwned"}, "is absolute"),
        ("create_file", {"path": ".git/hooks/pre-commit", "content": "pwned"}, ".git"),
        ("create_file", {"path": "aetherflow.toml", "content": "[checks]"}, "is protected"),
        ("create_file", {"path": ".github/workflows/ci.yml", "content": "on: push"}, "is protected"),
        ("delete_file", {"path": "../repo/app/auth.py"}, "resolves outside"),
    ],
)
async def test_writes_outside_or_to_protected_paths_are_refused(
    tmp_path: Path, workspace: Workspace, tool: str, arguments: dict, expected: str
) -> None:
    result = await make_box(workspace).execute(call(tool, arguments))
    assert not result.ok
    assert expected in result.content
    assert not (tmp_path / "outside.txt").exists()
    assert not (workspace.root.parent / "outside.txt").exists()
    assert not Path("/tmp/aether-outside.txt").exists()
    assert git(workspace.root, "status", "--porcelain") == ""


async def test_symlink_out_of_the_repository_is_not_followed(tmp_path: Path, workspace: Workspace) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("outside secret\n")
    (workspace.root / "link").symlink_to(outside)
    box = make_box(workspace)
    read = await box.execute(call("read_file", {"path": "link/secret.txt"}))
    assert not read.ok and "outside the repository" in read.content
    write = await box.execute(call("create_file", {"path": "link/new.txt", "content": "x"}))
    assert not write.ok and not (outside / "new.txt").exists()
    found = await box.execute(call("grep", {"pattern": "outside secret"}))
    assert found.ok and found.content.startswith("no match")


async def test_create_then_create_again_then_delete(workspace: Workspace) -> None:
    box = make_box(workspace)
    created = await box.execute(call("create_file", {"path": "app/jwt.py", "content": "SECRET_ALG = 'HS256'\n"}))
    assert created.ok and created.changed_path == "app/jwt.py"
    assert (workspace.root / "app" / "jwt.py").read_text() == "SECRET_ALG = 'HS256'\n"
    again = await box.execute(call("create_file", {"path": "app/jwt.py", "content": "other"}))
    assert not again.ok and "already exists; use edit_file" in again.content
    deleted = await box.execute(call("delete_file", {"path": "app/models.py"}))
    assert deleted.ok and not (workspace.root / "app" / "models.py").exists()
    missing = await box.execute(call("delete_file", {"path": "app/models.py"}))
    assert not missing.ok and "no file 'app/models.py'" in missing.content
    assert box.changed_paths == ["app/jwt.py", "app/models.py"]
    assert box.write_count == 2


# ---- checks -----------------------------------------------------------------------------------------------


async def test_run_check_runs_only_configured_commands(workspace: Workspace) -> None:
    runner = CheckRecorder(ok=False, output="1 failed")
    box = make_box(workspace, check_runner=runner)
    unknown = await box.execute(call("run_check", {"name": "rm -rf ."}))
    assert not unknown.ok
    assert unknown.content == "unknown check 'rm -rf .'. Configured checks: tests."
    assert runner.calls == []
    failed = await box.execute(call("run_check", {"name": "tests"}))
    assert not failed.ok
    assert failed.content == "check 'tests' FAILED in 0.2 s\n1 failed"
    assert runner.calls == [(workspace.root, "tests", "pytest -q", 30)]


async def test_run_check_without_configured_checks_says_how_to_add_them(workspace: Workspace) -> None:
    box = make_box(workspace, checks=ChecksConfig(), check_runner=CheckRecorder())
    result = await box.execute(call("run_check", {"name": "tests"}))
    assert not result.ok and "[checks.commands]" in result.content


async def test_run_check_with_the_real_runner_in_the_worktree(workspace: Workspace) -> None:
    command = f"{sys.executable} -c \"import os; print(os.getcwd())\""
    box = make_box(workspace, checks=ChecksConfig(commands={"where": command}, timeout_s=30))
    result = await box.execute(call("run_check", {"name": "where"}))
    assert result.ok, result.content
    assert result.content.startswith("check 'where' passed")
    assert str(workspace.root.resolve()) in result.content


# ---- output handling --------------------------------------------------------------------------------------


def test_truncate_middle_keeps_head_and_tail() -> None:
    text = "H" * 600 + "M" * 1000 + "T" * 400
    cut = truncate_middle(text, 1060)
    assert cut.startswith("H" * 600) and cut.endswith("T" * 400)
    assert "\n[... 1000 characters cut ...]\n" in cut
    assert len(cut) <= 1060 and truncate_middle(cut, 1060) == cut
    assert truncate_middle("short", 1000) == "short"


async def test_long_output_is_truncated_with_a_marker(workspace: Workspace) -> None:
    (workspace.root / "big.txt").write_text("".join(f"line {i}\n" for i in range(2000)))
    result = await make_box(workspace, max_output_chars=500).execute(call("read_file", {"path": "big.txt"}))
    assert result.ok
    assert result.content.startswith("line 0\n") and result.content.endswith("line 1999\n")
    assert "characters cut; read a smaller range with start_line and end_line ...]" in result.content
    assert len(result.content) < 700


async def test_secrets_in_tool_output_and_events_are_redacted(workspace: Workspace) -> None:
    secret = "sk-live-" + "Q" * 30
    bus = EventBus()
    events: list[Event] = []
    bus.subscribe(events.append)
    runner = CheckRecorder(ok=True, output=f"env: OPENAI_API_KEY={secret}\n")
    box = make_box(workspace, check_runner=runner, redactor=Redactor([secret], key=b"k" * 32), bus=bus,
                   run_id="run1", task_id="t1")
    result = await box.execute(call("run_check", {"name": "tests"}))
    assert result.ok and secret not in result.content and "OPENAI_API_KEY=" in result.content
    await box.execute(call("create_file", {"path": "notes.txt", "content": f"token {secret}"}))
    executed = [e for e in events if isinstance(e, ToolExecuted)]
    assert [(e.name, e.ok, e.run_id, e.task_id) for e in executed] == [
        ("run_check", True, "run1", "t1"), ("create_file", True, "run1", "t1")]
    assert all(secret not in e.arguments and secret not in e.summary for e in executed)


async def test_every_call_publishes_a_tool_executed_event(workspace: Workspace) -> None:
    bus = EventBus()
    events: list[Event] = []
    bus.subscribe(events.append)
    box = make_box(workspace, ["read_file"], bus=bus)
    await box.execute(call("read_file", {"path": "app/models.py"}))
    await box.execute(call("delete_file", {"path": "app/models.py"}))
    executed = [e for e in events if isinstance(e, ToolExecuted)]
    assert [(e.name, e.ok) for e in executed] == [("read_file", True), ("delete_file", False)]
    assert executed[0].summary == "class User:"
    assert "not available" in executed[1].summary


# ---- the text protocol's translation ----------------------------------------------------------------------


def test_parse_reply_tolerates_fences_decorated_names_and_stray_spaces() -> None:
    reply = (
        "I will change the login.\n\n**`app/auth.py`**:\n```python\n  <<<<<<<  SEARCH\n"
        "    return user == 'admin'\n =======\n    return False\n>>>>>>>> REPLACE  \n```\n"
        "<<<<<<< SEARCH\ndef logout(user):\n=======\ndef logout(user, everywhere=False):\n>>>>>>> REPLACE\n"
        "READ app/models.py 1-2\n\nnew/file.txt\n<<<<<<< SEARCH\n=======\nhello\n>>>>>>> REPLACE\nDONE\n"
    )
    parsed = text_protocol.parse_reply(reply)
    assert parsed.errors == []
    assert parsed.done
    assert parsed.actions == [
        text_protocol.EditBlock("app/auth.py", "    return user == 'admin'\n", "    return False\n"),
        text_protocol.EditBlock("app/auth.py", "def logout(user):\n", "def logout(user, everywhere=False):\n"),
        text_protocol.ReadRequest("app/models.py", 1, 2),
        text_protocol.EditBlock("new/file.txt", "", "hello\n"),
    ]
    assert parsed.prose == "I will change the login."


def test_parse_reply_reports_broken_blocks_instead_of_guessing() -> None:
    parsed = text_protocol.parse_reply(
        "Here is the fix:\n<<<<<<< SEARCH\nx = 1\n=======\nx = 2\n>>>>>>> REPLACE\n"
        "app/a.py\n<<<<<<< SEARCH\ny = 1\n=======\ny = 2\n"
    )
    assert parsed.actions == []
    assert len(parsed.errors) == 2
    assert "names no file" in parsed.errors[0]
    assert "has no '>>>>>>> REPLACE' line" in parsed.errors[1]


def test_actions_become_ordinary_tool_calls() -> None:
    edit = text_protocol.to_tool_call(text_protocol.EditBlock("a.py", "x\n", "y\n"), "t1")
    assert (edit.name, json.loads(edit.arguments)) == ("edit_file", {"path": "a.py", "search": "x\n", "replace": "y\n"})
    create = text_protocol.to_tool_call(text_protocol.EditBlock("b.py", "", "z\n"), "t2")
    assert (create.name, json.loads(create.arguments)) == ("create_file", {"path": "b.py", "content": "z\n"})
    read = text_protocol.to_tool_call(text_protocol.ReadRequest("c.py", 3, 9), "t3")
    assert (read.name, json.loads(read.arguments)) == ("read_file", {"path": "c.py", "start_line": 3, "end_line": 9})
