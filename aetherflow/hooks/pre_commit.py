"""The pre-commit hook: review what is staged, block only for a secret (or a finding at hooks.block_on).

The installed script runs `python -m aetherflow.hooks.pre_commit` rather than the `aether` command line: the CLI
imports every command group first, and this hook has half a second to spend when no model is available. Nothing
here imports LiteLLM: OpenAI-compatible providers are reached over httpx (`Gateway(light_transport=True)`).

Whatever happens after the secret scan (no key, no network, a provider error, a hang, a bug of ours), the commit
goes ahead with one line saying why it was not reviewed. `git commit --no-verify` skips the hook; so does
AETHER_SKIP=1 (handy where --no-verify cannot be passed, such as an IDE's commit button).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

SKIP_VARIABLE = "AETHER_SKIP"
_TRUE = frozenset({"1", "true", "yes", "on"})


def skip_requested(environ: Mapping[str, str]) -> bool:
    """AETHER_SKIP=1 (or true/yes/on) in the environment."""
    return environ.get(SKIP_VARIABLE, "").strip().lower() in _TRUE


def run_hook(cwd: Path | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Review the staged changes, print the result on stderr, and return the hook's exit status."""
    env = os.environ if environ is None else environ
    if skip_requested(env):
        return 0
    from aetherflow import paths
    from aetherflow.config import load_settings
    from aetherflow.errors import AetherError
    from aetherflow.review.findings import render
    from aetherflow.review.runner import review

    repo_root = paths.find_repo_root(cwd)
    if repo_root is None:
        _say(f"aether review: skipped, {cwd or Path.cwd()} is not inside a git work tree")
        return 0
    try:
        settings = load_settings(repo_root, environ=env)
        notice = settings.repo_trust.notice() if settings.repo_trust is not None else None
        if notice:
            _say(f"aether review: {notice}")
        report = review(repo_root, settings, env)
    except AetherError as exc:
        hint = f" ({exc.hint})" if exc.hint else ""
        _say(f"aether review: not reviewed: {exc.message}{hint}")
        return 0
    except Exception as exc:  # noqa: BLE001 - the hook's promise: a bug of ours never blocks a commit
        _say(f"aether review: not reviewed, internal error {type(exc).__name__}: {exc} (please report it)")
        return 0
    for line in render(report):
        _say(line)
    return report.exit_code


def _say(line: str) -> None:
    print(line, file=sys.stderr)


def exit_now(code: int) -> None:
    """Flush and leave at once. A worker thread the time budget abandoned (a LiteLLM import, a local model
    generation) would otherwise keep the process, and so the commit, waiting until it finished."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def main() -> None:
    """Entry point of the installed hook script."""
    exit_now(run_hook())


if __name__ == "__main__":
    main()
