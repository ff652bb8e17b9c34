"""Syntax checks per language and configured check commands (timeout, truncation, no secrets in the env)."""

from __future__ import annotations

import os
import select
import shlex
import sys
from pathlib import Path

import pytest

from aetherflow.workspace.validate import run_check, scrubbed_env, syntax_check

PY = shlex.quote(sys.executable)


def _has_exited(pid: int) -> bool:
    """Wait (up to 10 s, woken by the kernel, not polled) for a process that is not our child to exit."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        readable, _, _ = select.select([fd], [], [], 10.0)
        return bool(readable)
    finally:
        os.close(fd)


def _write(root: Path, files: dict[str, str]) -> list[str]:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return list(files)


def test_syntax_check_per_language(tmp_path: Path) -> None:
    paths = _write(
        tmp_path,
        {
            "good.py": "def f():\n    return 1\n",
            "bad.py": "def f(:\n    pass\n",
            "bad.json": '{"a": 1,}',
            "good.toml": "[a]\nb = 1\n",
            "bad.toml": "[a\n",
            "bad.yaml": "a: [1, 2\n",
            "good.js": "export function f(a) { return a + 1; }\n",
            "bad.ts": "function f(a: number { return a }\n",
            "notes.txt": "anything (\n",
        },
    )
    results = {r.name: r for r in syntax_check(tmp_path, [*paths, "deleted.py"])}
    assert set(results) == {f"syntax:{p}" for p in paths if p != "notes.txt"}
    assert results["syntax:good.py"].ok and results["syntax:good.toml"].ok and results["syntax:good.js"].ok
    assert results["syntax:bad.py"].output.startswith("bad.py:1:")
    assert results["syntax:bad.json"].output.startswith("bad.json:1:")
    for name in ("bad.py", "bad.json", "bad.toml", "bad.yaml", "bad.ts"):
        assert not results[f"syntax:{name}"].ok, name
    assert "typescript parser" in results["syntax:bad.ts"].output


def test_syntax_check_refuses_paths_outside(tmp_path: Path) -> None:
    (result,) = syntax_check(tmp_path, ["../outside.py"])
    assert not result.ok and "resolves outside the repository" in result.output


async def test_run_check_passes_and_fails_by_exit_code(tmp_path: Path) -> None:
    ok = await run_check(tmp_path, "tests", f"{PY} -c \"import os; print(os.getcwd())\"", 30)
    assert ok.ok and ok.output.strip() == str(tmp_path) and ok.name == "tests"
    failed = await run_check(tmp_path, "lint", f"{PY} -c \"import sys; print('E1 bad'); sys.exit(3)\"", 30)
    assert not failed.ok and "E1 bad" in failed.output


async def test_run_check_uses_no_shell(tmp_path: Path) -> None:
    result = await run_check(tmp_path, "t", f"{PY} -c \"import sys; print(sys.argv[1:])\" '$HOME' ';' 'rm' '-rf'", 30)
    assert result.ok and result.output.strip() == "['$HOME', ';', 'rm', '-rf']"


async def test_run_check_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    script = (
        "import subprocess, sys; "
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)']); "
        "open('child.pid', 'w').write(str(child.pid)); print('started', flush=True); child.wait()"
    )
    result = await run_check(tmp_path, "slow", f"{PY} -c {shlex.quote(script)}", 1.0)
    assert not result.ok
    assert "started" in result.output and "timed out after 1 s" in result.output
    assert result.duration_s < 20
    assert _has_exited(int((tmp_path / "child.pid").read_text()))


async def test_run_check_env_has_no_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secrets = {
        "OPENAI_API_KEY": "sk-proj-abcdefabcdefabcdef",
        "GITHUB_TOKEN": "ghp_abcdefabcdefabcdefabcdef",
        "MY_SERVICE_SECRET": "s3cr3t-value-1",
        "DB_PASSWORD": "hunter2-value",
        "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI-example",
        "DATABASE_URL": "postgres://app:pa55word@db.internal/app",
        "NPM_AUTH": "npm-auth-value",
    }
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("HARMLESS_SETTING", "visible-value")
    result = await run_check(tmp_path, "env", f"{PY} -c \"import os; print(dict(os.environ))\"", 30)
    assert result.ok and "visible-value" in result.output
    for value in secrets.values():
        assert value not in result.output
    assert "PATH" in scrubbed_env({"PATH": "/bin", "API_KEY": "x"})


async def test_run_check_output_is_truncated_head_and_tail(tmp_path: Path) -> None:
    script = "print('HEAD' + 'x' * 100000 + 'TAIL')"
    result = await run_check(tmp_path, "big", f"{PY} -c \"{script}\"", 30)
    assert result.ok
    assert result.output.startswith("HEAD") and result.output.rstrip().endswith("TAIL")
    assert "characters cut ...]" in result.output
    assert len(result.output) < 8200


async def test_run_check_unknown_program_and_bad_command(tmp_path: Path) -> None:
    missing = await run_check(tmp_path, "t", "no-such-program-aether --x", 30)
    assert not missing.ok and "cannot start 'no-such-program-aether'" in missing.output
    assert "aetherflow.toml" in missing.output
    unbalanced = await run_check(tmp_path, "t", "pytest 'unterminated", 30)
    assert not unbalanced.ok and "cannot parse the command" in unbalanced.output
    empty = await run_check(tmp_path, "t", "   ", 30)
    assert not empty.ok and "empty" in empty.output


async def test_run_check_does_not_wait_for_background_children(tmp_path: Path) -> None:
    """A command that exits leaving a child holding the output pipe still returns, and the child is killed."""
    script = (
        "import subprocess, sys; "
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)']); "
        "open('child.pid', 'w').write(str(child.pid)); print('done')"
    )
    result = await run_check(tmp_path, "bg", f"{PY} -c {shlex.quote(script)}", 60)
    assert result.ok and "done" in result.output and result.duration_s < 20
    assert _has_exited(int((tmp_path / "child.pid").read_text()))
