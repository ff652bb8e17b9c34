"""A scripted "team" for pipeline tests: the planner returns a fixed plan and each agent makes a fixed edit.

The script decides from the request alone (is it the planner, the summary, or which subtask's loop, at which
step), so the pipeline's real wiring (gateway, router, scheduler, agents, workspace) runs unmodified.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aetherflow.services import Services
from aetherflow.testing.script import Fault, RecordedRequest, Reply, ToolCallSpec
from aetherflow.testing.settings import scripted_environ, scripted_settings

Edit = dict[str, str]


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout


def make_repo(root: Path, files: dict[str, str]) -> Path:
    """A committed git repository holding `files`."""
    root.mkdir(parents=True, exist_ok=True)
    git(root, "init", "-q")
    git(root, "config", "user.email", "t@example.invalid")
    git(root, "config", "user.name", "t")
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    git(root, "add", "-A")
    git(root, "commit", "-qm", "init")
    return root


def plan_json(tasks: list[dict[str, Any]]) -> dict[str, Any]:
    return {"summary": "scripted plan", "tasks": tasks}


def task(task_id: str, description: str, *, depends_on: list[str] | None = None, fmt: str = "edits",
         task_type: str = "local_refactor") -> dict[str, Any]:
    return {"id": task_id, "type": task_type, "description": description, "depends_on": depends_on or [],
            "expected_output": {"format": fmt, "constraints": []}}


def _task_marker(req: RecordedRequest, markers: dict[str, Any]) -> str | None:
    # A description starts "MARK-X: ..."; a dependent's messages also hold "MARK-X done" (its dependency's
    # output), so the marker followed by a colon identifies the subtask itself.
    text = json.dumps(req.body.get("messages", []))
    own = next((m for m in markers if f"{m}:" in text), None)
    return own or next((m for m in markers if m in text), None)


def team_script(plan: dict[str, Any], edits: dict[str, list[Edit]],
                before_reply: Callable[[str], None] | None = None) -> Callable[[RecordedRequest], Reply | Fault]:
    """The server's script: `edits` maps a marker found in a subtask's description to its successive edits.

    Each agent step answers with the next edit as an edit_file/create_file tool call; after the last one the agent
    answers with "<marker> done". `before_reply(marker)` runs first (tests use it to block or record).
    """
    progress: dict[str, int] = {}

    def script(req: RecordedRequest) -> Reply | Fault:
        messages = req.body.get("messages", [])
        if req.body.get("response_format"):
            return Reply(json=plan)
        if messages and "Summarise" in str(messages[0].get("content")):
            return Reply(text="Scripted summary of the run.")
        marker = _task_marker(req, edits)
        if marker is None:
            return Fault(status=500, message="scripted team: unknown request")
        if before_reply is not None:
            before_reply(marker)
        step = progress.get(marker, 0)
        progress[marker] = step + 1
        if step < len(edits[marker]):
            edit = edits[marker][step]
            name = "create_file" if "content" in edit else "edit_file"
            return Reply(tool_calls=[ToolCallSpec(name=name, arguments=edit)])
        return Reply(text=f"{marker} done")

    return script


def services_for(repo: Path, server: Any, **overrides: Any) -> Services:
    settings = scripted_settings(server, **overrides)
    return Services(settings, repo, environ=scripted_environ())


def tree_state(repo: Path) -> tuple[dict[str, bytes], str]:
    """Every file's bytes outside .git and .aetherflow, and `git status --porcelain`: what "untouched" means."""
    files = {
        p.relative_to(repo).as_posix(): p.read_bytes()
        for p in sorted(repo.rglob("*"))
        if p.is_file() and not {".git", ".aetherflow"} & set(p.relative_to(repo).parts)
    }
    return files, git(repo, "status", "--porcelain", "--untracked-files=all")


def scripted_config_toml(server: Any, **overrides: Any) -> str:
    """An aetherflow.toml that points the catalogue and every agent at `server` (for `aether` subprocesses)."""
    import tomlkit

    from aetherflow.testing.settings import deep_merge, scripted_flags

    return tomlkit.dumps(deep_merge(scripted_flags(server.base_url), overrides))
