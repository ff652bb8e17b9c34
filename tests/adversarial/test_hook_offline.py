"""Adversarial item 16 of issue 7: the pre-commit hook offline or slow stays within its time budget and lets the
commit through; a staged secret still blocks, with no network at all.

The hook is installed with `aether hook install --pre-commit` and run by real `git commit`s in the example
repository (with the user's staged edit, unstaged edit and untracked notes), configured by a trusted
aetherflow.toml with the gateway's shipped timings (120 s timeout, backoff up to 30 s): only the hook's own budget
(hooks.timeout_s) can keep a commit short. tests/hooks covers a closed port and a hanging reply; here the provider
is a socket that accepts and never answers, a Retry-After storm, a late first token, a reply trickling one word
every half second, and the local model when no key is set.
"""

from __future__ import annotations

import base64
import os
import random
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pytest
from adversarial_support import (
    PROJECT_ROOT,
    STAGED_FILE,
    UNSTAGED_FILE,
    UNSTAGED_TEXT,
    UNTRACKED_FILE,
    assert_untouched,
    git,
    run_aether,
    snapshot,
    trust,
)
from orchestrator.pipeline_support import scripted_config_toml
from leak_support import leaks

from aetherflow.testing.script import Fault, Reply
from aetherflow.testing.server import ScriptedServer
from aetherflow.testing.settings import SCRIPTED_KEY, SCRIPTED_KEY_ENV

BUDGET_S = 2.0
# Interpreter start-up, settings, git and the commit itself on a busy 2-core machine, beyond the hook's budget.
START_MARGIN_S = 4.0
# What a user gets without configuring the gateway: only the hook's budget stands between them and these.
SHIPPED_GATEWAY = {"timeout_s": 120.0, "max_retries": 2, "backoff_initial_s": 0.5, "backoff_max_s": 30.0}
AWS_ID = "AKIA" + "Q3EGRTYWXZ7PLM4N"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/" + "bPxRfiCYzEXAMPLEK9"


@dataclass
class Commit:
    """One `git commit`: exit status, stderr (where the hook speaks) and wall time."""

    returncode: int
    stderr: str
    seconds: float


def commit(repo: Path, env: dict[str, str], message: str = "user commit") -> Commit:
    """`git commit` as the user runs it (hooks on), timed with time.monotonic."""
    started = time.monotonic()
    done = subprocess.run(["git", "commit", "-q", "-m", message], cwd=repo, env=env, capture_output=True,
                          text=True, timeout=120)
    return Commit(done.returncode, done.stderr, time.monotonic() - started)


def hook_env(extra_path: Path | None = None, **variables: str) -> dict[str, str]:
    """The environment of `git commit`: this test's home and git identity (set by fixtures), the project on the
    path, the provider key unless removed with an empty value."""
    env = {**os.environ, SCRIPTED_KEY_ENV: SCRIPTED_KEY, **variables}
    entries = [str(extra_path)] if extra_path is not None else []
    env["PYTHONPATH"] = os.pathsep.join([*entries, str(PROJECT_ROOT), *filter(None, [env.get("PYTHONPATH")])])
    return {name: value for name, value in env.items() if value != ""}


def configure(repo: Path, base_url: str, hooks: dict[str, object] | None = None) -> None:
    """A trusted aetherflow.toml for `base_url` with the shipped gateway timings and a 2 s hook budget; the hook
    installed through the command line."""
    overrides = {"gateway": SHIPPED_GATEWAY, "hooks": {"timeout_s": BUDGET_S, **(hooks or {})},
                 "cache": {"enabled": False}}
    (repo / "aetherflow.toml").write_text(scripted_config_toml(SimpleNamespace(base_url=base_url), **overrides))
    trust(repo)
    installed = run_aether(repo, "hook", "install", "--pre-commit")
    assert installed.returncode == 0, installed.stderr
    assert "pre-commit: AetherFlow hook installed" in installed.stdout


def assert_committed_only_the_staged_change(repo: Path, before_head: str) -> None:
    """The commit holds the user's staged edit; the unstaged edit and the untracked notes are still the user's."""
    assert git(repo, "rev-parse", "HEAD~1").strip() == before_head
    assert git(repo, "diff", "--name-only", "HEAD~1", "HEAD").split() == [STAGED_FILE]
    assert git(repo, "diff", "--cached", "--name-only") == ""
    assert git(repo, "diff", "--name-only").split() == ["aetherflow.toml", UNSTAGED_FILE]
    assert (repo / UNSTAGED_FILE).read_text().endswith(UNSTAGED_TEXT)
    assert f"?? {UNTRACKED_FILE}" in git(repo, "status", "--porcelain", "--untracked-files=all")


# ---- providers that never answer in time -------------------------------------------------------------------


@pytest.fixture
def silent_socket() -> Iterator[str]:
    """A base URL whose port accepts connections (the kernel's backlog) but where nothing ever reads or answers."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/v1"
    finally:
        listener.close()


SLOW_PROVIDERS = {
    # Always 429 with a Retry-After of a minute: honouring it must not hold the commit.
    "retry-after-storm": lambda: Fault(status=429, retry_after=60.0),
    # The first token arrives after the budget.
    "late-first-token": lambda: Reply(json={"findings": []}, ttft_s=BUDGET_S + 8.0),
    # Words keep coming, one every half second, so no read ever times out: only the total budget can stop it.
    "trickle": lambda: Reply(text=" ".join(["{}"] * 60), tokens_per_s=2.0),
}


@pytest.mark.parametrize("behaviour", sorted(SLOW_PROVIDERS))
def test_slow_provider_lets_the_commit_through_within_the_hook_budget(
    demo_repo: Path, scripted_server: ScriptedServer, behaviour: str
) -> None:
    """A provider that is slow in any way (a Retry-After storm, a late first token, a trickling reply): the commit
    goes through, exit 0, within hooks.timeout_s plus start-up, with one line saying it was not reviewed."""
    scripted_server.script = lambda request: SLOW_PROVIDERS[behaviour]()
    configure(demo_repo, scripted_server.base_url)
    head = git(demo_repo, "rev-parse", "HEAD").strip()

    done = commit(demo_repo, hook_env())

    assert done.returncode == 0, done.stderr
    assert done.seconds < BUDGET_S + START_MARGIN_S, (done.seconds, done.stderr)
    assert "aether review: not reviewed" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    assert scripted_server.request_count >= 1  # the provider was really asked
    assert_committed_only_the_staged_change(demo_repo, head)


def test_silent_provider_socket_lets_the_commit_through_within_the_hook_budget(
    demo_repo: Path, silent_socket: str
) -> None:
    """A provider whose port accepts the connection and then never answers (no HTTP server behind it): the commit
    goes through within the budget."""
    configure(demo_repo, silent_socket)
    head = git(demo_repo, "rev-parse", "HEAD").strip()

    done = commit(demo_repo, hook_env())

    assert done.returncode == 0, done.stderr
    assert done.seconds < BUDGET_S + START_MARGIN_S, (done.seconds, done.stderr)
    assert "no answer within the time budget (hooks.timeout_s = 2 s)" in done.stderr
    assert_committed_only_the_staged_change(demo_repo, head)


def test_every_provider_offline_with_shipped_retries_lets_the_commit_through(demo_repo: Path) -> None:
    """Both models of the review agent on a closed port, with the shipped retries and backoff: the commit goes
    through within the budget, saying it was not reviewed."""
    with ScriptedServer() as gone:
        closed = gone.base_url  # the port is closed once the server stops
    configure(demo_repo, closed)
    head = git(demo_repo, "rev-parse", "HEAD").strip()

    done = commit(demo_repo, hook_env())

    assert done.returncode == 0, done.stderr
    assert done.seconds < BUDGET_S + START_MARGIN_S, (done.seconds, done.stderr)
    assert "aether review: not reviewed" in done.stderr
    assert_committed_only_the_staged_change(demo_repo, head)


@pytest.mark.local_model
def test_slow_local_model_without_a_key_lets_the_commit_through_within_the_hook_budget(
    demo_repo: Path, scripted_server: ScriptedServer
) -> None:
    """No key set, so the review falls to the in-process local model, which needs longer than a 2 s budget on
    this machine: the commit goes through in time; the abandoned generation does not hold it."""
    pytest.importorskip("llama_cpp")
    configure(demo_repo, scripted_server.base_url, hooks={"use_local_model": True, "timeout_s": 1.0})
    head = git(demo_repo, "rev-parse", "HEAD").strip()

    done = commit(demo_repo, hook_env(**{SCRIPTED_KEY_ENV: ""}))

    assert done.returncode == 0, done.stderr
    assert done.seconds < 1.0 + START_MARGIN_S, (done.seconds, done.stderr)
    assert "aether review: not reviewed" in done.stderr, done.stderr
    assert scripted_server.request_count == 0
    assert_committed_only_the_staged_change(demo_repo, head)


# ---- a staged secret, with no network at all -------------------------------------------------------------

# Loaded by every Python process of the commit (only the hook's) through PYTHONPATH: it notes that it was loaded,
# and any connection or name look-up is written to the log and refused.
NO_NETWORK_SITECUSTOMIZE = r"""
import os, sys

_LOG = os.environ.get("AETHER_TEST_NETWORK_LOG")
if os.environ.get("AETHER_TEST_SITE_MARKER"):
    with open(os.environ["AETHER_TEST_SITE_MARKER"], "a") as marker:
        marker.write(f"python {os.getpid()} watched\n")
_WATCHED = {"socket.connect", "socket.getaddrinfo", "socket.gethostbyname", "socket.sendto", "socket.sendmsg"}


def _refuse(event, args):
    if _LOG and event in _WATCHED:
        with open(_LOG, "a") as log:
            log.write(f"{event} {args[1] if event == 'socket.connect' else args[0]!r}\n")
        raise OSError("network refused by the test")


sys.addaudithook(_refuse)
"""


def test_staged_secret_blocks_the_commit_with_no_network_at_all(
    demo_repo: Path, scripted_server: ScriptedServer, tmp_path: Path
) -> None:
    """A staged .env with an AWS key pair, committed with every network call refused: blocked (exit 1) by the
    local scan, naming the file and lines and what to do, with no connection attempted and nothing changed."""
    configure(demo_repo, scripted_server.base_url)
    (demo_repo / "deploy").mkdir()
    (demo_repo / "deploy" / "prod.env").write_text(f"REGION=eu-west-1\nAWS_ACCESS_KEY_ID={AWS_ID}\n"
                                                  f"AWS_SECRET_ACCESS_KEY={AWS_SECRET}\n")
    git(demo_repo, "add", "deploy/prod.env")
    site = tmp_path / "no-network-site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(NO_NETWORK_SITECUSTOMIZE)
    network_log, marker = tmp_path / "network-attempts.log", tmp_path / "watched-processes.log"
    before = snapshot(demo_repo)

    done = commit(demo_repo, hook_env(site, AETHER_TEST_NETWORK_LOG=str(network_log),
                                      AETHER_TEST_SITE_MARKER=str(marker)))

    assert done.returncode == 1, done.stderr
    assert "deploy/prod.env:2 high secret" in done.stderr and "deploy/prod.env:3 high secret" in done.stderr
    assert "commit blocked" in done.stderr and "Remove them and stage again" in done.stderr
    assert "--no-verify" in done.stderr
    assert AWS_ID not in done.stderr and AWS_SECRET not in done.stderr  # never echoed
    assert "watched" in marker.read_text()  # the hook's Python (the commit's only one) loaded the watch
    assert not network_log.exists(), network_log.read_text()
    assert scripted_server.request_count == 0
    assert_untouched(before, demo_repo)
    # Control: under the same watch, a connection attempt is logged and refused.
    probe = f"import socket; socket.create_connection(('127.0.0.1', {scripted_server.port}), timeout=5)"
    refused = subprocess.run([sys.executable, "-c", probe], env=hook_env(site, AETHER_TEST_NETWORK_LOG=str(
        network_log)), capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0 and "network refused by the test" in refused.stderr
    assert "socket.getaddrinfo" in network_log.read_text() and scripted_server.request_count == 0


def test_secret_staged_then_removed_only_in_the_work_tree_still_blocks(
    demo_repo: Path, scripted_server: ScriptedServer
) -> None:
    """The user stages a file with a key, then deletes the key in the editor without staging again: what would be
    committed is the staged text, so the commit is blocked."""
    configure(demo_repo, scripted_server.base_url)
    settings = demo_repo / "app" / "keys.py"
    settings.write_text(f'AWS_ACCESS_KEY_ID = "{AWS_ID}"\n')
    git(demo_repo, "add", "app/keys.py")
    settings.write_text('AWS_ACCESS_KEY_ID = os.environ["AWS_ACCESS_KEY_ID"]\n')
    before = snapshot(demo_repo)

    done = commit(demo_repo, hook_env())

    assert done.returncode == 1, done.stderr
    assert "app/keys.py:1 high secret" in done.stderr and "commit blocked" in done.stderr
    assert scripted_server.request_count == 0
    assert_untouched(before, demo_repo)


def test_staged_secret_in_a_file_with_an_unusual_name_is_named_as_the_user_knows_it(
    demo_repo: Path, scripted_server: ScriptedServer
) -> None:
    """A key in a file whose name has spaces and non-ASCII letters (which git quotes in diffs): blocked, and the
    message names the file as it is on disk."""
    configure(demo_repo, scripted_server.base_url)
    name = "config/clés de prod.py"
    (demo_repo / "config").mkdir()
    (demo_repo / name).write_text(f'DEBUG = False\nSTRIPE = "{"sk_" + "live_" + "51HxYzAbCdEfGhIjKlMnOpQr"}"\n')
    git(demo_repo, "add", "--", name)
    before = snapshot(demo_repo)

    done = commit(demo_repo, hook_env())

    assert done.returncode == 1, done.stderr
    assert f"{name}:2 high secret" in done.stderr, done.stderr
    assert scripted_server.request_count == 0
    assert_untouched(before, demo_repo)


def test_staged_public_certificate_is_not_taken_for_a_private_key(demo_repo: Path,
                                                                  scripted_server: ScriptedServer) -> None:
    """A public certificate's base64 lines look like private key lines (which are redacted on their own): the
    scan must still let it be committed, and the model reviews it."""
    scripted_server.script = lambda request: Reply(json={"findings": []})
    configure(demo_repo, scripted_server.base_url)
    body = base64.b64encode(random.Random(3).randbytes(900)).decode()
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    certificate = "\n".join(["-----BEGIN CERTIFICATE-----", *lines, "-----END CERTIFICATE-----", ""])
    (demo_repo / "certs").mkdir()
    (demo_repo / "certs" / "ca.pem").write_text(certificate)
    git(demo_repo, "add", "certs/ca.pem")

    done = commit(demo_repo, hook_env())

    assert done.returncode == 0, done.stderr
    assert "high secret" not in done.stderr and "no findings" in done.stderr
    assert scripted_server.request_count == 1
    assert "certs/ca.pem" in git(demo_repo, "show", "--name-only", "--format=", "HEAD").split()


def test_secrets_in_the_context_and_removed_lines_reach_the_review_model_redacted(
    demo_repo: Path, scripted_server: ScriptedServer
) -> None:
    """The user removes a password from a committed .env and edits the line beside the others: nothing secret is
    added, so the model reviews the diff, whose context and removed lines hold secrets (numbered `    3  NAME=`
    and `      -NAME=` lines): the model receives none of them."""
    secrets = {"DB_PASSWORD": "Hunter" + "2-correct-" + "horse", "SERVICE_TOKEN": "tok-" + "81Lp0xWv7Rb3",
               "SMTP_PASS": "m4il" + "-Pass-" + "word", "OLD_PASSWORD": "Old" + "Secret" + "-2019x"}
    lines = ["DEBUG=true", *(f"{name}={value}" for name, value in secrets.items())]
    (demo_repo / ".env").write_text("\n".join(lines) + "\n")
    git(demo_repo, "add", ".env")
    git(demo_repo, "commit", "-qm", "env", "--", ".env")
    scripted_server.script = lambda request: Reply(json={"findings": []})
    configure(demo_repo, scripted_server.base_url)
    edited = [line for line in lines if not line.startswith("OLD_PASSWORD")]
    (demo_repo / ".env").write_text("\n".join(["DEBUG=false", *edited[1:]]) + "\n")
    git(demo_repo, "add", ".env")

    done = commit(demo_repo, hook_env())

    assert done.returncode == 0, done.stderr
    assert scripted_server.request_count == 1
    sent = scripted_server.requests[0].message_text()
    assert "+DEBUG=false" in sent and "-OLD_PASSWORD=«redacted:" in sent and "DB_PASSWORD=«redacted:" in sent
    assert leaks(scripted_server.requests, secrets) == []
