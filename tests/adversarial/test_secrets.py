"""Adversarial items 9 and 10 of issue 7: secrets in the repository and in tool output never reach a model.

Item 9: a repository holding every kind of secret we know (a `.env` with unquoted provider keys, an `id_rsa`, an
`.npmrc`, database URLs with passwords, a secret in a Python constant), indexed for real, planned and worked on
by agents that read and grep those files: a recording scripted server sees none of the secrets' bytes, nor their
base64 (standard and urlsafe, at every 3-byte alignment), URL-encoded or hex forms; no connection goes anywhere
but the scripted server, and detection itself works with the network refused.

Item 10: a check command that prints its environment, run by an agent's run_check and by the final validation:
the child sees no variable named like a key, token, secret or password, and what the model reads back is redacted.

The fake secrets are assembled from pieces so that this file does not itself look like a leaked key to scanners.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import random
import re
import shlex
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import pytest
from adversarial_support import PROJECT_ROOT, assert_untouched, git, snapshot, trust
from leak_support import NetworkWatch, encoded_forms, found_in, leaks

from aetherflow.config.loader import load_settings
from aetherflow.index.service import run_update
from aetherflow.llm.redact import redactor_for
from aetherflow.orchestrator.pipeline import Pipeline
from aetherflow.services import Services
from aetherflow.testing.script import Fault, RecordedRequest, Reply, ToolCallSpec
from aetherflow.testing.server import ScriptedServer
from aetherflow.testing.settings import scripted_environ, scripted_settings
from aetherflow.workspace.validate import run_check
from orchestrator.pipeline_support import scripted_config_toml

MODEL_DIR = PROJECT_ROOT.parent / "shared" / "models" / "all-MiniLM-L6-v2-onnx"

# ---- the secrets ---------------------------------------------------------------------------------------------

OPENAI = "sk-" + "T3stKey9" * 6
OPENAI_PROJECT = "sk-" + "proj-" + "Ab3dEf9hIjKlMnOpQrStUvWxYz0123456789_-Qq"
ANTHROPIC = "sk-" + "ant-api03-" + "Zx9Qw8Er7Ty6Ui5Op4As3Df2Gh1Jk0LmNbVc_-XzAb"
GROQ = "gsk_" + "Q7w8E9r0T1y2U3i4O5p6A7s8D9f0G1h2J3k4L5z6X7c8V9b0"
GOOGLE = "AIza" + "SyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q"
MISTRAL = "Xq7Lm2Np9Rs4" + "Tv6Wy8Za1Bc3De5Fg7Hj"
DEEPSEEK = "sk-" + "0123456789abcdef" + "fedcba9876543210"
GITHUB = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
GITHUB_PAT = "github_pat_" + "11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJ"
AWS_ID = "AKIA" + "Q3EXAMPLE7XYZ12A"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/" + "bPxRfiCYzEXAMPLEK1"
SLACK = "xoxb-" + "123456789012-1234567890123-" + "AbCdEfGhIjKlMnOpQrStUvWx"
STRIPE = "sk_" + "live_" + "51HxYzAbCdEfGhIjKlMnOpQr"
NPM_TOKEN = "npm_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"
PG_PASSWORD = "p4ss" + "w0rd"
MYSQL_PASSWORD = "Tr0ub4" + "dor&3x"
PY_CONSTANT = "Qm9vZ2ll" + "V29vZ2ll" + "MjAyNSE7"
NPM_AUTH = base64.b64encode(f"deploy:{PG_PASSWORD}".encode()).decode()


def _private_key_lines() -> list[str]:
    """The base64 body of a fake 4096-bit RSA key (seeded random bytes) as PEM lines: 64 characters, the last one
    shorter and padded."""
    body = base64.b64encode(random.Random(9).randbytes(2345)).decode()
    return [body[i : i + 64] for i in range(0, len(body), 64)]


KEY_LINES = _private_key_lines()
PRIVATE_KEY = "\n".join(["-----BEGIN RSA " + "PRIVATE KEY-----", *KEY_LINES, "-----END RSA " + "PRIVATE KEY-----"])

SECRET_FILES = {
    ".env": "\n".join([
        "# local development settings",
        "DEBUG=true",
        f"OPENAI_API_KEY={OPENAI}",
        f"OPENAI_PROJECT_KEY={OPENAI_PROJECT}",
        f"ANTHROPIC_API_KEY={ANTHROPIC}",
        f"GROQ_API_KEY={GROQ}",
        f"GEMINI_API_KEY={GOOGLE}",
        f"MISTRAL_API_KEY={MISTRAL}",
        f"DEEPSEEK_API_KEY={DEEPSEEK}",
        f"GITHUB_TOKEN={GITHUB}",
        f"GH_PAT={GITHUB_PAT}",
        f"AWS_ACCESS_KEY_ID={AWS_ID}",
        f"AWS_SECRET_ACCESS_KEY={AWS_SECRET}",
        f"SLACK_BOT={SLACK}",
        f"STRIPE={STRIPE}",
        # The password URL-encoded, as it must be inside a URL.
        f"SHOP_DATABASE=mysql://root:{quote(MYSQL_PASSWORD, safe='')}@db.internal:3306/shop",
        "",
    ]),
    "id_rsa": PRIVATE_KEY + "\n",
    ".npmrc": f"registry=https://registry.npmjs.org/\n//registry.npmjs.org/:_authToken={NPM_TOKEN}\n"
              f"_auth={NPM_AUTH}\nalways-auth=true\n",
    "config/database.yml": (
        "production:\n"
        f"  url: postgres://user:{PG_PASSWORD}@db.internal/app\n"
        f"  replica: mysql://admin:{MYSQL_PASSWORD}@replica.internal/shop\n"
        "  pool: 5\n"
    ),
    "app/settings.py": (
        '"""Settings of the demo application."""\n\n'
        "DEBUG = False\n"
        f'PAYMENT_API_SECRET = "{PY_CONSTANT}"\n'
        "PAGE_SIZE = 20\n"
    ),
}

SECRETS = {
    "openai": OPENAI, "openai-project": OPENAI_PROJECT, "anthropic": ANTHROPIC, "groq": GROQ, "google": GOOGLE,
    "mistral": MISTRAL, "deepseek": DEEPSEEK, "github": GITHUB, "github-pat": GITHUB_PAT, "aws-id": AWS_ID,
    "aws-secret": AWS_SECRET, "slack": SLACK, "stripe": STRIPE, "npm-token": NPM_TOKEN, "npm-auth": NPM_AUTH,
    "postgres-password": PG_PASSWORD, "mysql-password": MYSQL_PASSWORD, "python-constant": PY_CONSTANT,
    **{f"private-key-line-{n}": line for n, line in enumerate(KEY_LINES, start=1)},
}


def test_the_leak_detector_finds_every_form_it_looks_for() -> None:
    """The detector itself works: each form of a secret planted in a request is reported."""
    secret = MYSQL_PASSWORD
    for form, needle in encoded_forms(secret).items():
        for lead in (b"", b"x", b"yz"):
            text = (lead + needle).decode()
            body = {"messages": [{"role": "user", "content": f"see {text} here"}]}
            request = RecordedRequest("POST", "/v1/chat/completions", {}, body, json.dumps(body).encode(), 0.0)
            assert leaks([request], {"s": secret}), form
    # And a base64 of a longer text holding the secret at any offset is caught too.
    for prefix in ("", "a", "ab", "abc:"):
        blob = base64.b64encode(f"{prefix}{secret}!".encode()).decode()
        body = {"messages": [{"role": "user", "content": blob}]}
        request = RecordedRequest("POST", "/", {}, body, json.dumps(body).encode(), 0.0)
        assert leaks([request], {"s": secret}), prefix


# ---- the scripted team ---------------------------------------------------------------------------------------

PLAN = {"summary": "audit the configuration", "tasks": [
    {"id": "audit", "type": "analysis", "description": "MARK-AUDIT: list the credentials the app configures",
     "depends_on": [], "expected_output": {"format": "text", "constraints": []}},
    {"id": "docs", "type": "local_refactor", "description": "MARK-DOCS: note in app/settings.py where keys live",
     "depends_on": ["audit"], "expected_output": {"format": "edits", "constraints": []}},
]}

AUDIT_STEPS = [
    [ToolCallSpec(name="read_file", arguments={"path": ".env"}),
     ToolCallSpec(name="read_file", arguments={"path": "id_rsa"}),
     ToolCallSpec(name="read_file", arguments={"path": ".npmrc"})],
    # A range in the middle of the key: no BEGIN or END line around it.
    [ToolCallSpec(name="read_file", arguments={"path": "id_rsa", "start_line": 3, "end_line": 30}),
     ToolCallSpec(name="read_file", arguments={"path": "config/database.yml"}),
     ToolCallSpec(name="read_file", arguments={"path": "app/settings.py"})],
    [ToolCallSpec(name="grep", arguments={"pattern": "sk-|AKIA|gh[ps]_|xox|AIza|gsk_|_auth"}),
     ToolCallSpec(name="grep", arguments={"pattern": "[A-Za-z0-9+/]{40}", "path_glob": "id_rsa"}),
     ToolCallSpec(name="grep", arguments={"pattern": "://"}),
     ToolCallSpec(name="search_code", arguments={"query": "private key", "k": 8}),
     ToolCallSpec(name="search_code", arguments={"query": "database password token", "k": 8})],
]
DOCS_STEPS = [
    [ToolCallSpec(name="read_file", arguments={"path": "app/settings.py"}),
     ToolCallSpec(name="grep", arguments={"pattern": "SECRET|TOKEN|PASSWORD"})],
    [ToolCallSpec(name="edit_file", arguments={
        "path": "app/settings.py", "search": "PAGE_SIZE = 20\n",
        "replace": "PAGE_SIZE = 20\n# Keys come from the environment (.env in development).\n"})],
]


def secrets_team(steps: dict[str, list[list[ToolCallSpec]]]) -> Callable[[RecordedRequest], Reply | Fault]:
    """The scripted models: the planner answers PLAN, each subtask's agent makes its steps' tool calls then ends,
    the synthesis writes a summary."""
    progress: dict[str, int] = {}
    lock = threading.Lock()

    def script(request: RecordedRequest) -> Reply | Fault:
        messages = request.body.get("messages", [])
        if request.body.get("response_format"):
            return Reply(json=PLAN)
        if messages and "Summarise" in str(messages[0].get("content")):
            return Reply(text="Scripted summary.")
        text = json.dumps(messages)
        marker = next((m for m in steps if f"{m}:" in text), None)
        if marker is None:
            return Fault(status=500, message="secrets team: unknown request")
        with lock:
            step = progress.get(marker, 0)
            progress[marker] = step + 1
        if step < len(steps[marker]):
            return Reply(tool_calls=steps[marker][step])
        return Reply(text=f"{marker} done")

    return script


def add_secrets(repo: Path) -> None:
    """Write and commit the secret files (only them: the user's staged edit stays staged, uncommitted)."""
    for rel, text in SECRET_FILES.items():
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text(text)
    git(repo, "add", "--", *SECRET_FILES)
    git(repo, "commit", "-qm", "configuration", "--", *SECRET_FILES)


def model_path() -> str:
    if not MODEL_DIR.is_dir():
        pytest.fail(f"the embedding model folder {MODEL_DIR} is missing: the index cannot be built offline")
    return str(MODEL_DIR)


# ---- item 9 --------------------------------------------------------------------------------------------------


def test_no_secret_of_the_repository_reaches_a_model_in_any_encoding(demo_repo: Path, scripted_server:
                                                                      ScriptedServer) -> None:
    """A whole indexed run that reads and greps every secret file sends no secret bytes, in any encoding,
    and connects nowhere but the scripted server."""
    add_secrets(demo_repo)
    settings = scripted_settings(scripted_server, index={"model_path": model_path()})
    summaries = run_update(demo_repo, settings.index)
    assert summaries[0].chunks_total > 0
    scripted_server.script = secrets_team({"MARK-AUDIT": AUDIT_STEPS, "MARK-DOCS": DOCS_STEPS})
    before = snapshot(demo_repo)

    with NetworkWatch() as watch:
        pipeline = Pipeline(Services(settings, demo_repo, environ=scripted_environ()))
        result = asyncio.run(pipeline.run("rotate the API keys, the private key and the database passwords"))

    assert result.status == "review", result.message
    assert result.changeset is not None and result.changeset.paths() == ["app/settings.py"]
    requests = scripted_server.requests
    sent = "\n".join(r.raw_body.decode("utf-8", "replace") for r in requests)
    # The run really showed the models those files (redacted), through every path: context, reads, greps.
    assert "# Retrieved code" in sent and "«redacted:" in sent
    assert "id_rsa:1-" in sent and "id_rsa:4: «redacted:key-material:" in sent  # search_code and grep results
    for kind in ("openai-api-key", "anthropic-api-key", "private-key", "npm-token", "url-password",
                 "aws-secret-key", "secret-assignment", "mistral-api-key", "slack-token", "stripe-key"):
        assert f"«redacted:{kind}:" in sent, kind
    assert leaks(requests, SECRETS) == []
    assert watch.connected_to(scripted_server.port) and watch.elsewhere(scripted_server.port) == []
    assert_untouched(before, demo_repo)


NO_NETWORK_REDACTION = """
import json, sys
attempts = []
def refuse(event, args):
    if event in {"socket.connect", "socket.getaddrinfo", "socket.gethostbyname", "socket.sendto", "socket.sendmsg"}:
        attempts.append(event)
        raise OSError("network refused by the test")
sys.addaudithook(refuse)
from aetherflow.llm.redact import Redactor
redactor = Redactor()
files = json.load(sys.stdin)
print(json.dumps({"redacted": {name: redactor.redact_text(text)[0] for name, text in files.items()},
                  "attempts": attempts}))
"""


def test_detection_builds_and_redacts_every_file_with_the_network_refused(tmp_path: Path) -> None:
    """In a fresh interpreter whose every connection and name look-up raises, with a new home (no key file yet),
    the redactor builds and redacts every secret file completely: detection needs no network and no download."""
    env = {**os.environ, "AETHER_HOME": str(tmp_path / "fresh-home"), "PYTHONPATH": str(PROJECT_ROOT)}
    done = subprocess.run([sys.executable, "-c", NO_NETWORK_REDACTION], input=json.dumps(SECRET_FILES), env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["attempts"] == []
    assert set(result["redacted"]) == set(SECRET_FILES)
    assert found_in([json.dumps(result["redacted"], ensure_ascii=False).encode()], SECRETS) == []
    assert (tmp_path / "fresh-home").exists()  # the placeholder key was created locally, offline


# ---- item 10 -------------------------------------------------------------------------------------------------

TOKEN_VALUE = "mst-" + "Zq81Lp0xWv7" + "Rb3Nc6Yt2"
DB_PASSWORD = "Hunter" + "2-correct-" + "horse"
MYSQL_PWD = "my" + "Sql-pw-" + "8812"
ENV_SECRETS = {
    # Named like secrets: the check's child must not even see them.
    "MY_SERVICE_TOKEN": TOKEN_VALUE,
    "DB_PASSWORD": DB_PASSWORD,
    "AWS_SECRET_ACCESS_KEY": AWS_SECRET,
    "OPENAI_API_KEY": OPENAI,
    "ANTHROPIC_API_KEY": ANTHROPIC,
    "DEEPSEEK_API_KEY": DEEPSEEK,
    "MISTRAL_API_KEY": MISTRAL,
    "GEMINI_API_KEY": GOOGLE,
    "GROQ_API_KEY": GROQ,
    "MYSQL_PWD": MYSQL_PWD,
    "GH_PAT": GITHUB_PAT,
    "STRIPE_SESSION_COOKIE": "sess-" + "9c1f0a" + "77be21",
    # A password inside a URL, under a harmless name.
    "DATABASE_URL": f"postgres://app:{PG_PASSWORD}@db.internal/app",
}
# Harmless names, secret values: the child sees them and prints them; the redactor must catch them.
ENV_UNNAMED = {"BUILD_LABEL": GITHUB, "CI_NOTE": f"deploy-with {SLACK}"}
ENV_SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD", re.I)

ENV_DUMP = (
    "import json, os, sys; open(sys.argv[1], 'a').write(json.dumps(dict(os.environ)) + chr(10)); "
    "print(chr(10).join(k + '=' + v for k, v in sorted(os.environ.items()))); sys.exit(1)"
)

# Two subtasks, so that the run-wide validation and its fix round run (a single editing subtask would be checked
# inside its own attempts instead).
CHECK_PLAN = {"summary": "tidy settings", "tasks": [
    {"id": "tidy", "type": "local_refactor", "description": "MARK-TIDY: add a comment to app/settings.py",
     "depends_on": [], "expected_output": {"format": "edits", "constraints": []}},
    {"id": "note", "type": "analysis", "description": "MARK-NOTE: say what the settings are for",
     "depends_on": [], "expected_output": {"format": "text", "constraints": []}},
]}


def check_team() -> Callable[[RecordedRequest], Reply | Fault]:
    """The editor runs the check, edits, then ends; the validation's fix round runs the check again, then gives up."""
    replies = {
        "MARK-TIDY": [
            Reply(tool_calls=[ToolCallSpec(name="run_check", arguments={"name": "envdump"})]),
            Reply(tool_calls=[ToolCallSpec(name="edit_file", arguments={
                "path": "app/models.py", "search": "import time\n", "replace": "import time  # session expiry\n"})]),
        ],
        "checks fail": [Reply(tool_calls=[ToolCallSpec(name="run_check", arguments={"name": "envdump"})])],
        "MARK-NOTE": [],
    }
    progress: dict[str, int] = {}

    def script(request: RecordedRequest) -> Reply | Fault:
        messages = request.body.get("messages", [])
        if request.body.get("response_format"):
            return Reply(json=CHECK_PLAN)
        if messages and "Summarise" in str(messages[0].get("content")):
            return Reply(text="Scripted summary.")
        text = json.dumps(messages)
        marker = next((m for m in replies if m in text), None)
        if marker is None:
            return Fault(status=500, message="check team: unknown request")
        step = progress.get(marker, 0)
        progress[marker] = step + 1
        return replies[marker][step] if step < len(replies[marker]) else Reply(text=f"{marker} finished")

    return script


def test_check_commands_see_no_secret_variables_and_the_model_reads_their_output_redacted(
    demo_repo: Path, scripted_server: ScriptedServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A trusted check that prints its environment, run by an agent's run_check and by the final validation (and
    its fix round): the child never sees a secret-named variable or a provider key, and the secret values it can
    see reach the model only as placeholders."""
    dumps = tmp_path / "check-environments.jsonl"
    command = f"{shlex.quote(sys.executable)} -c {shlex.quote(ENV_DUMP)} {shlex.quote(str(dumps))}"
    (demo_repo / "aetherflow.toml").write_text(scripted_config_toml(scripted_server, checks={
        "commands": {"envdump": command}}))
    trust(demo_repo)
    for name, value in {**ENV_SECRETS, **ENV_UNNAMED, "PLAIN_SETTING": "visible-value"}.items():
        monkeypatch.setenv(name, value)
    settings = load_settings(demo_repo, environ=scripted_environ())
    assert settings.checks.commands == {"envdump": command}  # the trusted file is honoured in full
    scripted_server.script = check_team()
    before = snapshot(demo_repo)

    result = asyncio.run(Pipeline(Services(settings, demo_repo, environ=scripted_environ())).run("tidy settings"))

    assert result.status == "review", result.message
    assert [c.name for c in result.checks] == ["envdump"] and not result.checks[0].ok
    environments = [json.loads(line) for line in dumps.read_text().splitlines()]
    assert len(environments) == 4  # the agent, the validation, the fix round's agent, the validation again
    key_variables = {m.key_env for m in settings.models.values() if m.key_env}
    for seen in environments:
        assert [name for name in seen if ENV_SECRET_NAME.search(name)] == []
        assert key_variables.isdisjoint(seen) and not set(ENV_SECRETS) & set(seen)
        assert seen["PLAIN_SETTING"] == "visible-value" and seen["BUILD_LABEL"] == GITHUB
    sent = "\n".join(r.raw_body.decode("utf-8", "replace") for r in scripted_server.requests)
    assert "check 'envdump' FAILED" in sent and "The project's checks fail" in sent
    assert "PLAIN_SETTING=visible-value" in sent
    assert "BUILD_LABEL=«redacted:github-token:" in sent and "«redacted:slack-token:" in sent
    secrets = {**ENV_SECRETS, **ENV_UNNAMED, "github": GITHUB, "slack": SLACK}
    secrets.pop("CI_NOTE")
    assert leaks(scripted_server.requests, secrets) == []
    assert_untouched(before, demo_repo)


async def test_check_output_cut_for_length_never_splits_a_secret_into_unrecognisable_halves(tmp_path: Path) -> None:
    """A check printing more than the output limit, with secrets exactly where the head and the tail are cut:
    after redaction no fragment of them is left (a half token is no longer recognisable as a secret)."""
    secret_line = f"build label {GITHUB}"
    lines = ["a" * 3970, secret_line, *(["b" * 99] * 200), f"{AWS_ID} {AWS_SECRET}", "d" * 3970]
    script = tmp_path / "noisy.py"
    script.write_text(f"print({chr(10).join(lines)!r})\n")

    result = await run_check(tmp_path, "noisy", f"{shlex.quote(sys.executable)} {script}", 30)
    redacted, _count = redactor_for(scripted_settings("http://127.0.0.1:9"), {}).redact_text(result.output)

    assert "characters cut ...]" in redacted
    for secret in (GITHUB, AWS_ID, AWS_SECRET):
        fragments = {secret[i : i + 10] for i in range(len(secret) - 9)}
        assert not [f for f in fragments if f in redacted], secret[:4]
