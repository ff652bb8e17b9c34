"""Overhead of the pre-commit review hook on `git commit` (issue 6 targets: <= 1.5 s with the scripted server
answering at once and no findings; <= 0.5 s with no key configured and no local model).

Each scenario commits a one-line change N times with the hook installed and N times without it (same repository,
same change size) and prints the medians and their difference. "No local model" is set with
hooks.use_local_model = false, which takes the same early exit as a machine without the local model.

Run: python bench/bench_hook.py [--runs N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import tomlkit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aetherflow.hooks import installer  # noqa: E402
from aetherflow.testing.server import Reply, ScriptedServer  # noqa: E402
from aetherflow.testing.settings import SCRIPTED_KEY, SCRIPTED_KEY_ENV, deep_merge, scripted_flags  # noqa: E402

TARGETS = {"scripted server, no findings": 1.5, "no key, no local model": 0.5}


def _env(home: Path, with_key: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and not k.startswith("AETHER_")}
    env.update(AETHER_HOME=str(home), GIT_CONFIG_GLOBAL=os.devnull, GIT_CONFIG_NOSYSTEM="1",
               GIT_AUTHOR_NAME="b", GIT_AUTHOR_EMAIL="b@example.com", GIT_COMMITTER_NAME="b",
               GIT_COMMITTER_EMAIL="b@example.com", PYTHONPATH=str(ROOT))
    if with_key:
        env[SCRIPTED_KEY_ENV] = SCRIPTED_KEY
    return env


def _git(repo: Path, env: dict[str, str], *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True)


def _repo(folder: Path, env: dict[str, str], config: dict[str, Any]) -> Path:
    repo = folder / "repo"
    repo.mkdir()
    _git(repo, env, "init", "-q", "-b", "main")
    (repo / "aetherflow.toml").write_text(tomlkit.dumps(config))
    _trust(repo, env)
    (repo / "a.py").write_text("x = 0\n")
    _git(repo, env, "add", "a.py")
    _git(repo, env, "commit", "-q", "--no-verify", "-m", "initial")
    return repo


def _trust(repo: Path, env: dict[str, str]) -> None:
    # The hook honours the file's models only once the user trusts it; this bench is that user.
    subprocess.run([sys.executable, "-m", "aetherflow", "trust"], cwd=repo, env=env, check=True, capture_output=True)


def _timed_commits(repo: Path, env: dict[str, str], runs: int, start: int) -> list[float]:
    times: list[float] = []
    for i in range(start, start + runs):
        (repo / "a.py").write_text(f"x = {i}\n")
        _git(repo, env, "add", "a.py")
        began = time.perf_counter()
        done = subprocess.run(["git", "commit", "-q", "-m", f"c{i}"], cwd=repo, env=env, capture_output=True, text=True)
        times.append(time.perf_counter() - began)
        if done.returncode != 0:
            raise SystemExit(f"commit failed: {done.stderr}")
    return times


def scenario(name: str, runs: int, server: ScriptedServer, with_key: bool, hooks: dict[str, Any]) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "home").mkdir()
        env = _env(folder / "home", with_key)
        config = deep_merge(scripted_flags(server.base_url), {"cache": {"enabled": False}, "hooks": hooks})
        repo = _repo(folder, env, config)
        bare = _timed_commits(repo, env, runs, 1)
        installer.install(repo, "pre-commit")
        before = server.request_count
        hooked = _timed_commits(repo, env, runs, 1000)
        calls = server.request_count - before
    overhead = statistics.median(hooked) - statistics.median(bare)
    verdict = "ok" if overhead <= TARGETS[name] else "OVER TARGET"
    print(f"{name}: commit without hook {statistics.median(bare):.3f} s, with hook {statistics.median(hooked):.3f} s "
          f"(min {min(hooked):.3f}, max {max(hooked):.3f}); overhead {overhead:.3f} s, target <= {TARGETS[name]} s "
          f"[{verdict}]; model requests {calls}")
    return overhead


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7, help="commits per series (>= 5)")
    runs = max(5, parser.parse_args().runs)
    with ScriptedServer() as server:
        server.script = lambda request: Reply(json={"findings": []})
        scenario("scripted server, no findings", runs, server, with_key=True, hooks={})
        scenario("no key, no local model", runs, server, with_key=False, hooks={"use_local_model": False})
    print(f"load average: {', '.join(f'{v:.2f}' for v in os.getloadavg())} ({os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
