"""Secret redaction: every kind of secret, stable placeholders, messages untouched, no false positives on code.

The fake secrets are assembled from pieces so that this file does not itself look like a leaked key to scanners.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from aetherflow.llm.redact import KEY_FILE_NAME, Redactor, installation_key
from aetherflow.llm.types import ImagePart, Message, TextPart, ToolCall

PLACEHOLDER = re.compile(r"«redacted:([a-z0-9-]+):([0-9a-f]{8})»")

ANTHROPIC = "sk-ant-" + "api03-" + "Zx9Qw8Er7Ty6Ui5Op4As3Df2Gh1Jk0LmNbVc_-XzAb"
OPENAI = "sk-" + "proj-" + "Ab3dEf9hIjKlMnOpQrStUvWxYz0123456789"
OPENAI_LEGACY = "sk-" + "T3stKey9" * 6
DEEPSEEK = "sk-" + "0123456789abcdef" * 2
GOOGLE = "AIza" + "SyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q"
GROQ = "gsk_" + "Q7w8E9r0T1y2U3i4O5p6A7s8D9f0G1h2J3k4L5z6X7c8V9b0"
MISTRAL = "Xq7Lm2Np9Rs4Tv6Wy8Za1Bc3De5Fg7Hj"
AWS_ID = "AKIA" + "Q3EXAMPLE7XYZ12A"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/" + "bPxRfiCYzEXAMPLEK1"
GITHUB = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
GITHUB_PAT = "github_pat_" + "11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJ"
SLACK = "xoxb-" + "123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx"
NPM = "npm_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"
STRIPE = "sk_live_" + "51HxYzAbCdEfGhIjKlMnOpQr"
GITLAB = "glpat-" + "Ab1Cd2Ef3Gh4Ij5Kl6Mn"


def _jwt() -> str:
    def part(data: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    return f"{part({'alg': 'HS256', 'typ': 'JWT'})}.{part({'sub': '1234567890', 'name': 'Ada'})}.SflKxwRJSMeKKF2QT4fw"


def _private_key(kind: str = "RSA ") -> str:
    body = "\n".join(["MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun"] * 5)
    return f"-----BEGIN {kind}PRIVATE KEY-----\n{body}\n-----END {kind}PRIVATE KEY-----"


@pytest.fixture
def redactor() -> Redactor:
    return Redactor(key=b"k" * 32)


def _kinds(text: str) -> list[str]:
    return [m.group(1) for m in PLACEHOLDER.finditer(text)]


@pytest.mark.parametrize(
    ("text", "secret", "kind"),
    [
        (f"key: {ANTHROPIC}", ANTHROPIC, "anthropic-api-key"),
        (f"client = OpenAI(api_key={OPENAI!r})", OPENAI, "openai-api-key"),
        (f"old key {OPENAI_LEGACY} here", OPENAI_LEGACY, "openai-api-key"),
        (f"DeepSeek: {DEEPSEEK}.", DEEPSEEK, "deepseek-api-key"),
        (f"url = 'https://generativelanguage.googleapis.com/v1?x=1' # {GOOGLE}", GOOGLE, "google-api-key"),
        (f"groq {GROQ}", GROQ, "groq-api-key"),
        (f"MISTRAL_API_KEY={MISTRAL}", MISTRAL, "mistral-api-key"),
        (f'mistral_key: "{MISTRAL}"', MISTRAL, "mistral-api-key"),
        (f"aws_access_key_id = {AWS_ID}", AWS_ID, "aws-access-key"),
        (f"aws_secret_access_key = {AWS_SECRET}", AWS_SECRET, "aws-secret-key"),
        (f"User,Key\nci,{AWS_ID},{AWS_SECRET}\n", AWS_SECRET, "aws-secret-key"),
        ("DATABASE_URL=postgres://app:Tr0ub4dor3xyz@db.internal:5432/app", "Tr0ub4dor3xyz", "url-password"),
        ("see https://api.example.com/v1/items?page=2&token=9f8e7d6c5b4a3210fe", "9f8e7d6c5b4a3210fe", "url-token"),
        ("GET /cb#x?access_token=ya29.A0ARrdaM-abc123 HTTP/1.1", "ya29.A0ARrdaM-abc123", "url-token"),
        ("curl 'https://x.io/q?api_key=Zk81mQp0Lw&x=1'", "Zk81mQp0Lw", "url-token"),
        (f"Authorization: Bearer {_jwt()}", _jwt(), "jwt"),
        (f"git remote add origin https://{GITHUB}@github.com/a/b", GITHUB, "github-token"),
        (f"GH={GITHUB_PAT}", GITHUB_PAT, "github-token"),
        (f"slack: {SLACK}", SLACK, "slack-token"),
        (f"//registry.npmjs.org/:_authToken={NPM}", NPM, "npm-token"),
        ("//npm.pkg.github.com/:_authToken=0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0", "0b1c2d3e", "npm-token"),
        (f"stripe.api_key = '{STRIPE}'", STRIPE, "stripe-key"),
        (f"token {GITLAB}", GITLAB, "gitlab-token"),
    ],
)
def test_each_kind_of_secret_is_redacted(redactor: Redactor, text: str, secret: str, kind: str) -> None:
    redacted, count = redactor.redact_text(text)
    assert secret not in redacted
    assert count >= 1
    assert kind in _kinds(redacted), redacted


@pytest.mark.parametrize(
    ("line", "secret"),
    [
        ("DB_PASSWORD=hunter2-Horse", "hunter2-Horse"),  # .env
        ('export SECRET_KEY="q9!ZmL0pXr"', "q9!ZmL0pXr"),  # shell
        ("password: s3cr3t-pa55", "s3cr3t-pa55"),  # YAML unquoted
        ("  db_password: swordfish", "swordfish"),  # YAML unquoted word
        ("client_secret: 'Kf83jD0qL2'", "Kf83jD0qL2"),  # YAML quoted
        ('{"user": "ada", "apiKey": "ak_9f8e7d6c5b4a"}', "ak_9f8e7d6c5b4a"),  # JSON
        ('auth_token = "tk-4471-zeta"', "tk-4471-zeta"),  # TOML
        ("[db]\npasswd = 8c1f0a77e2", "8c1f0a77e2"),  # INI
        ('conn = connect(host="db", password="hunter2")', "hunter2"),  # hard-coded in code
        ('PRIVATE_KEY="0x4c0883a69102937d6231471b5dbb6204fe512961708279f8c5c0f2b8b5b0c6a1"', "0x4c0883a6910"),
        ('credentials = "user01:Pa55w0rd"', "Pa55w0rd"),
    ],
)
def test_secret_looking_assignments_in_config_files(redactor: Redactor, line: str, secret: str) -> None:
    redacted, count = redactor.redact_text(line)
    assert secret not in redacted, redacted
    assert count == 1


def test_private_key_block_is_redacted_across_lines(redactor: Redactor) -> None:
    text = f"Here is the deploy key:\n{_private_key()}\nand that is all."
    redacted, count = redactor.redact_text(text)
    assert count == 1
    assert "MIIEow" not in redacted and "PRIVATE KEY" not in redacted
    assert redacted.startswith("Here is the deploy key:\n«redacted:private-key:")
    assert redacted.endswith("»\nand that is all.")


@pytest.mark.parametrize("kind", ["", "EC ", "OPENSSH ", "ENCRYPTED ", "PGP "])
def test_private_key_variants_escaped_in_json_and_truncated(redactor: Redactor, kind: str) -> None:
    block = _private_key(kind)
    as_json = json.dumps({"key": block})
    redacted, _ = redactor.redact_text(as_json)
    assert "MIIEow" not in redacted
    assert json.loads(redacted)["key"].startswith("«redacted:private-key:")  # still valid JSON
    truncated = block.split("-----END")[0][:-40]
    redacted, _ = redactor.redact_text(f"cat id_rsa\n{truncated}")
    assert "MIIEow" not in redacted


def test_pgp_private_key_block_with_headers(redactor: Redactor) -> None:
    block = (
        "-----BEGIN PGP PRIVATE KEY BLOCK-----\nVersion: GnuPG v2.0.22 (GNU/Linux)\n\n"
        "lQOYBF3j2ZkBCADKx8Zt0f1n5Ebq9Vh3ZtYp7Qm2Lr4Ws6Ux8Yz0Ab1Cd2Ef3Gh4Ij5Kl6\n=Xy7Z\n"
        "-----END PGP PRIVATE KEY BLOCK-----"
    )
    redacted, count = redactor.redact_text(f"key:\n{block}\nend")
    assert count == 1 and redacted.startswith("key:\n«redacted:private-key:") and redacted.endswith("»\nend")


def test_key_markers_in_code_and_placeholders_are_not_keys(redactor: Redactor) -> None:
    code = '_SK_START = b"-----BEGIN OPENSSH PRIVATE KEY-----"\n_SK_END = b"-----END OPENSSH PRIVATE KEY-----"\n'
    placeholder = '{"placeholder": "-----BEGIN RSA PRIVATE KEY-----\\n...\\n-----END RSA PRIVATE KEY-----"}'
    env_template = "OPENAI_API_KEY=<your key>\nexport SECRET_KEY=${SECRET_KEY}\nDB_PASSWORD=\n"
    for sample in (code, placeholder, env_template):
        assert redactor.redact_text(sample) == (sample, 0), sample


def test_known_secrets_are_redacted_wherever_they_appear() -> None:
    configured = "plain-looking-value-with-no-pattern"
    redactor = Redactor(known_secrets=[configured, "short"], key=b"k" * 32)
    redacted, count = redactor.redact_text(f"the value is {configured}, again: {configured}; short stays")
    assert configured not in redacted and count == 2
    assert _kinds(redacted) == ["known-secret", "known-secret"]
    assert "short stays" in redacted  # too short to redact blindly


def test_placeholders_are_stable_and_distinct(redactor: Redactor) -> None:
    first, _ = redactor.redact_text(f"a={GITHUB} b={GITHUB} c={NPM}")
    second, _ = redactor.redact_text(f"x {GITHUB}")
    placeholders = PLACEHOLDER.findall(first)
    assert placeholders[0] == placeholders[1]  # same secret, same placeholder
    assert placeholders[0] != placeholders[2]  # distinct secrets differ
    assert PLACEHOLDER.findall(second)[0] == placeholders[0]  # across calls
    again = Redactor(key=b"k" * 32)
    assert again.redact_text(GITHUB)[0] == redactor.redact_text(GITHUB)[0]  # across instances with the key


def test_placeholder_hash_is_keyed_so_it_does_not_reveal_the_secret() -> None:
    one = Redactor(key=b"a" * 32).redact_text("password: hunter2")[0]
    other = Redactor(key=b"b" * 32).redact_text("password: hunter2")[0]
    assert one != other
    assert "hunter2" not in one


def test_installation_key_is_created_once_private_and_reused(aether_home: Path) -> None:
    key = installation_key()
    key_file = aether_home / "data" / KEY_FILE_NAME
    assert key_file.read_bytes() == key and len(key) == 32
    assert key_file.stat().st_mode & 0o077 == 0
    assert installation_key() == key
    assert Redactor().redact_text(GITHUB)[0] == Redactor(key=key).redact_text(GITHUB)[0]


def test_redaction_is_idempotent(redactor: Redactor) -> None:
    once, count = redactor.redact_text(f'password = "hunter2"\ntoken: {GITHUB}\n{_private_key()}')
    assert count == 3
    assert redactor.redact_text(once) == (once, 0)


IMAGE_DATA_URL = "data:image/png;base64,AAAA"


def test_messages_are_copied_not_mutated(redactor: Redactor) -> None:
    arguments = json.dumps({"path": ".env", "content": f"OPENAI_API_KEY={OPENAI}\nDEBUG=1\n"})
    messages = [
        Message(role="system", content="You are helpful.", cache_prefix=True),
        Message(role="user", content=[TextPart(text=f"deploy with {AWS_ID}"), ImagePart(url=IMAGE_DATA_URL)]),
        Message(role="assistant", tool_calls=[ToolCall(id="c1", name="create_file", arguments=arguments)]),
        Message(role="tool", tool_call_id="c1", content=f"wrote token {GITHUB}"),
    ]
    before = [m.model_dump() for m in messages]

    redacted, count = redactor.redact_messages(messages)

    assert [m.model_dump() for m in messages] == before
    assert count == 3
    assert redacted[0] == messages[0] and redacted[0].cache_prefix
    assert AWS_ID not in redacted[1].text()
    assert redacted[1].content[1] == ImagePart(url=IMAGE_DATA_URL)
    new_arguments = redacted[2].tool_calls[0].parsed_arguments()  # still valid JSON
    assert OPENAI not in new_arguments["content"] and "DEBUG=1" in new_arguments["content"]
    assert GITHUB not in redacted[3].text() and redacted[3].tool_call_id == "c1"
    assert redacted[2].tool_calls[0] is not messages[2].tool_calls[0]


def test_tokens_in_http_image_urls_are_redacted(redactor: Redactor) -> None:
    url = "https://bucket.s3.amazonaws.com/a.png?X-Amz-Signature=3f9a8b7c6d5e4f3a2b1c&x=1"
    redacted, count = redactor.redact_messages([Message(role="user", content=[ImagePart(url=url)])])
    assert count == 1 and "3f9a8b7c6d5e4f3a2b1c" not in redacted[0].content[0].url


ORDINARY_CODE = '''
"""Session handling."""
import hashlib
import os
from dataclasses import dataclass

from pydantic import SecretStr

TOKEN_PATTERN = "[A-Za-z0-9_]+"
DEFAULT_HEADER = "X-Api-Key"
PASSWORD_MIN_LENGTH = 12
max_tokens = 4096


@dataclass
class Credentials:
    username: str
    password: SecretStr
    token: str | None = None
    api_key: str = ""


def login(form, tokens, settings):
    token = tokens[0]
    password_field = "password"
    password = form.get(password_field)
    secret = None
    api_key = os.environ["OPENAI_API_KEY"]
    auth = settings.auth
    token = get_token()
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    digest = hashlib.sha256(password.encode()).hexdigest()
    token_type = "bearer"
    if password == "":
        raise ValueError("Enter your password, then try again.")
    return Credentials(username=form["user"], password=password, token=token, api_key=api_key)


def connect(url="postgres://localhost:5432/app", pool=8):
    return url
'''

ORDINARY_DATA = '''
[[package]]
name = "requests"
version = "2.32.3"
source = { registry = "https://pypi.org/simple" }
sdist = { url = "https://files.pythonhosted.org/packages/63/70/2bf7780ad2d390a8d301ad0b550f1581eadbd9a20f896afe06353c2a2913/requests-2.32.3.tar.gz", hash = "sha256:55365417734eb18255590a9ff9eb394e3328a4f5b1de6b6b9a6e2b48d2c1e86c" }
"node_modules/left-pad": {"version": "1.3.0", "integrity": "sha512-XI5MPzVNApjAyhQzphX8BkmKsKUxD4LdyK24iZeQELdc3d+SgeXG1oMfy0W4pU0lfk8WIHv4Njt9HbG2apxPQ=="}
commit 1f7c196674fbe5d4623a381eb6e7dfea6cf0c4a5
id: 7c9e6679-7425-40de-944b-e07fc1f90ae7
color: "#1a2b3c"
auth: basic
token_url: https://oauth2.example.com/token
see https://example.com/search?q=tokens&page=2 for details about sk-learn-compatible-estimators
'''


@pytest.mark.parametrize("sample", [ORDINARY_CODE, ORDINARY_DATA], ids=["python-module", "lock-files-and-ids"])
def test_no_false_positives_on_ordinary_code_and_data(redactor: Redactor, sample: str) -> None:
    redacted, count = redactor.redact_text(sample)
    assert count == 0, [redacted[f.start - 20 : f.end + 20] for f in redactor.scan(sample)]
    assert redacted == sample


def test_no_false_positives_on_this_projects_own_source(redactor: Redactor) -> None:
    package = Path(__file__).resolve().parents[2] / "aetherflow"
    for module in ("llm/budget.py", "llm/tokens.py", "llm/pricing.py", "config/models.py", "errors.py"):
        source = (package / module).read_text()
        assert redactor.scan(source) == [], module


def test_detection_uses_no_network(tmp_path: Path) -> None:
    """In a fresh interpreter with an audit hook recording socket connections, sends and name look-ups, building a
    Redactor (which loads detect-secrets' plugins) and redacting every kind of secret connects nowhere.

    (Importing `requests` through detect-secrets binds a throw-away socket to ::1 to probe IPv6 support; that is
    local and not watched.)"""
    script = (
        "import sys\n"
        "events = []\n"
        "watched = {'socket.connect', 'socket.getaddrinfo', 'socket.gethostbyname', 'socket.sendto',"
        " 'socket.sendmsg'}\n"
        "sys.addaudithook(lambda e, a: events.append(e) if e in watched else None)\n"
        "from aetherflow.llm.redact import Redactor\n"
        f"text, count = Redactor().redact_text({ALL_SECRETS!r})\n"
        "print(count, sorted(set(events)))\n"
    )
    env = {**os.environ, "AETHER_HOME": str(tmp_path), "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split(" ", 1) == [str(ALL_SECRETS_COUNT), "[]\n"]


ALL_SECRETS = "\n".join(
    [ANTHROPIC, OPENAI, DEEPSEEK, GOOGLE, GROQ, AWS_ID, GITHUB, SLACK, NPM, STRIPE, GITLAB, _jwt(), _private_key()]
)
ALL_SECRETS_COUNT = 13
