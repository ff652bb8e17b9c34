"""The pre-commit review hook through real `git commit` runs: secrets block with no model call, failures and
hangs never block, only the staged text is reviewed, findings are printed, the policy blocks when configured."""

from __future__ import annotations

from pathlib import Path

import pytest
from hook_support import commit, git, stage, write_config

from aetherflow.hooks import installer
from aetherflow.testing.server import Fault, Reply, ScriptedServer

AWS_KEY_LINE = 'AWS_ACCESS_KEY_ID = "AKIAQ3EGRTYWXZ7PLM4N"\n'
PRIVATE_KEY = (
    "KEY = '''-----BEGIN RSA PRIVATE KEY-----\n"
    "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun\n"
    "VTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u+qKhbwKfBstIs+bMY2Zkp18gnTxK\n"
    "-----END RSA PRIVATE KEY-----'''\n"
)
CLEAN = Reply(json={"findings": []})


def _installed(repo: Path) -> None:
    assert installer.install(repo, "pre-commit").state == "ours"


def _head_subject(repo: Path, env: dict[str, str]) -> str:
    return git(repo, env, "log", "-1", "--format=%s").stdout.strip()


@pytest.mark.parametrize("content", [AWS_KEY_LINE, PRIVATE_KEY], ids=["aws-key", "private-key"])
def test_staged_secret_blocks_without_a_model_call(make_repo, hook_env, scripted_server, content) -> None:
    repo = make_repo()
    write_config(repo, scripted_server.base_url)
    _installed(repo)
    stage(repo, hook_env, {"settings.py": "DEBUG = False\n" + content})
    done = commit(repo, hook_env, message="with secret")
    assert done.returncode == 1, done.stderr
    assert "settings.py:2 high secret" in done.stderr and "commit blocked" in done.stderr
    assert "AKIAQ3EGRTYWXZ7PLM4N" not in done.stderr and "MIIEow" not in done.stderr  # never echoed
    assert scripted_server.request_count == 0
    assert _head_subject(repo, hook_env) == "initial"
    # --no-verify and AETHER_SKIP=1 both skip the hook.
    assert commit(repo, {**hook_env, "AETHER_SKIP": "1"}, message="skipped").returncode == 0
    assert scripted_server.request_count == 0


def test_no_verify_skips_the_hook(make_repo, hook_env, scripted_server) -> None:
    repo = make_repo()
    write_config(repo, scripted_server.base_url)
    _installed(repo)
    stage(repo, hook_env, {"settings.py": AWS_KEY_LINE})
    assert commit(repo, hook_env, "--no-verify").returncode == 0
    assert scripted_server.request_count == 0


def test_unreachable_provider_never_blocks(make_repo, hook_env) -> None:
    with ScriptedServer() as gone:
        closed_url = gone.base_url  # the port is closed once the server stops
    repo = make_repo()
    write_config(repo, closed_url, hooks={"timeout_s": 2.0})
    _installed(repo)
    stage(repo, hook_env, {"b.py": "y = 2\n"})
    done = commit(repo, hook_env)
    assert done.returncode == 0, done.stderr
    assert "aether review: not reviewed" in done.stderr
    assert _head_subject(repo, hook_env) == "change"


def test_hanging_provider_ends_within_the_time_budget(make_repo, hook_env, scripted_server) -> None:
    scripted_server.script = lambda request: Fault(hang=True)
    repo = make_repo()
    write_config(repo, scripted_server.base_url, hooks={"timeout_s": 2.0})
    _installed(repo)
    stage(repo, hook_env, {"b.py": "y = 2\n"})
    done = commit(repo, hook_env)
    assert done.returncode == 0, done.stderr
    assert "no answer within the time budget (hooks.timeout_s = 2 s)" in done.stderr
    assert len([line for line in done.stderr.splitlines() if line.strip()]) == 1  # one line
    # 2 s budget plus interpreter start-up and git on a busy machine; without the budget it would wait 10 s+.
    assert done.seconds < 6.0
    assert scripted_server.request_count >= 1


def test_partially_staged_file_is_reviewed_as_staged(make_repo, hook_env, scripted_server) -> None:
    scripted_server.enqueue(CLEAN)
    repo = make_repo()
    write_config(repo, scripted_server.base_url)
    _installed(repo)
    stage(repo, hook_env, {"a.py": "x = 1\nstaged_marker = 'in the index'\n"})
    (repo / "a.py").write_text("x = 1\nstaged_marker = 'in the index'\nunstaged_marker = 'work tree only'\n")
    done = commit(repo, hook_env)
    assert done.returncode == 0, done.stderr
    sent = scripted_server.completion_requests()[0].message_text()
    assert "staged_marker = 'in the index'" in sent and "unstaged_marker" not in sent
    assert "aether review: no findings" in done.stderr


def test_findings_are_printed_and_inform_by_default(make_repo, hook_env, scripted_server) -> None:
    scripted_server.enqueue(Reply(json={"findings": [
        {"file": "b.py", "line": 2, "severity": "high", "category": "debug", "message": "print left in."},
        {"file": "elsewhere.py", "line": 1, "severity": "low", "category": "other", "message": "invented"},
    ]}))
    repo = make_repo()
    write_config(repo, scripted_server.base_url)
    _installed(repo)
    stage(repo, hook_env, {"b.py": "y = 2\nprint(y)\n"})
    done = commit(repo, hook_env)
    assert done.returncode == 0, done.stderr
    assert "b.py:2 high debug: print left in." in done.stderr
    assert "elsewhere.py" not in done.stderr.split("aether review:")[0]
    assert "1 finding(s) about files not in the diff were ignored" in done.stderr
    request = scripted_server.completion_requests()[0]
    assert "     2 +print(y)" in request.message_text()  # numbered lines for the model
    assert request.body["response_format"]["type"] == "json_schema"


@pytest.mark.parametrize(("severity", "blocked"), [("medium", True), ("low", False)])
def test_block_on_policy(make_repo, hook_env, scripted_server, severity, blocked) -> None:
    scripted_server.enqueue(Reply(json={"findings": [
        {"file": "b.py", "line": 1, "severity": severity, "category": "bug", "message": "off by one."},
    ]}))
    repo = make_repo()
    write_config(repo, scripted_server.base_url, hooks={"block_on": "medium"})
    _installed(repo)
    stage(repo, hook_env, {"b.py": "y = [1][1]\n"})
    done = commit(repo, hook_env)
    assert done.returncode == (1 if blocked else 0), done.stderr
    assert f"b.py:1 {severity} bug: off by one." in done.stderr
    assert ("at or above hooks.block_on = medium" in done.stderr) is blocked


def test_no_key_and_no_local_model_skips_quickly(make_repo, hook_env, scripted_server) -> None:
    repo = make_repo()
    write_config(repo, scripted_server.base_url, hooks={"use_local_model": False})
    _installed(repo)
    env = {k: v for k, v in hook_env.items() if k != "SCRIPTED_API_KEY"}
    stage(repo, env, {"b.py": "y = 2\n"})
    done = commit(repo, env)
    assert done.returncode == 0, done.stderr
    assert "model review skipped, no model available: set SCRIPTED_API_KEY" in done.stderr
    assert scripted_server.request_count == 0
    stage(repo, env, {"c.py": AWS_KEY_LINE})
    assert commit(repo, env).returncode == 1  # the secret scan needs no model


def test_existing_hook_still_runs_and_is_restored(make_repo, hook_env, scripted_server) -> None:
    scripted_server.script = lambda request: CLEAN
    repo = make_repo()
    write_config(repo, scripted_server.base_url)
    theirs = installer.hooks_dir(repo) / "pre-commit"
    theirs.write_text('#!/bin/sh\necho theirs >> "$(git rev-parse --show-toplevel)/theirs-ran.txt"\n')
    theirs.chmod(0o755)
    status = installer.install(repo, "pre-commit")
    assert status.chained is not None and "chaining your previous hook" in status.describe()
    stage(repo, hook_env, {"b.py": "y = 2\n"})
    assert commit(repo, hook_env).returncode == 0
    assert (repo / "theirs-ran.txt").read_text() == "theirs\n"
    assert scripted_server.request_count == 1
    restored = installer.uninstall(repo, "pre-commit")
    assert restored.state == "foreign" and "theirs-ran.txt" in theirs.read_text()


def test_core_hooks_path_is_honoured(make_repo, hook_env, scripted_server) -> None:
    repo = make_repo()
    git(repo, hook_env, "config", "core.hooksPath", ".githooks")
    write_config(repo, scripted_server.base_url)
    status = installer.install(repo, "pre-commit")
    assert status.path == repo / ".githooks" / "pre-commit"
    stage(repo, hook_env, {"settings.py": AWS_KEY_LINE})
    done = commit(repo, hook_env)
    assert done.returncode == 1 and "high secret" in done.stderr
