"""Secret redaction for everything sent to a non-local model.

Each secret found is replaced by a stable placeholder such as `«redacted:aws-access-key:1a2b3c4d»`: the same secret
always gives the same placeholder, so response-cache keys stay stable, and distinct secrets give distinct ones, so
the model can still tell them apart. The 8 hex digits are an HMAC of the secret under a random key kept in the
user's data folder: they do not reveal the secret, even a short password, to anyone without that key.

Detection is offline: compiled regexes (`redact_patterns`) plus literal matches of the configured key values.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from aetherflow import paths
from aetherflow.config.models import Settings
from aetherflow.llm.redact_patterns import PLACEHOLDER_PREFIX, Rule, builtin_rules
from aetherflow.llm.types import ImagePart, Message, TextPart, ToolCall

log = logging.getLogger(__name__)

KEY_FILE_NAME = "redaction.key"
# Known secrets shorter than this are ignored: replacing every "abc" in a prompt would wreck it.
MIN_KNOWN_SECRET_LENGTH = 8
_KEY_BYTES = 32


@dataclass(frozen=True, order=True)
class Finding:
    """One secret in a text: where it lies and what kind it is."""

    start: int
    end: int
    kind: str


class Redactor:
    """Finds secrets in text and messages and replaces them with stable placeholders.

    `known_secrets` are literal values to redact wherever they appear (the configured API keys). `key` is the HMAC
    key for placeholders; by default the per-user key from `installation_key()`, so placeholders stay the same
    across runs.
    """

    def __init__(self, known_secrets: Iterable[str] = (), *, key: bytes | None = None) -> None:
        self._key = installation_key() if key is None else key
        self._rules: tuple[Rule, ...] = builtin_rules()
        literals = sorted({s for s in known_secrets if len(s) >= MIN_KNOWN_SECRET_LENGTH}, key=len, reverse=True)
        self._known = re.compile("|".join(map(re.escape, literals))) if literals else None

    def scan(self, text: str) -> list[Finding]:
        """The secrets in `text`, in order, overlapping finds merged (the earliest-starting one names the kind)."""
        found: list[tuple[int, int, int, str]] = []
        if self._known is not None:
            found.extend((m.start(), -m.end(), -1, "known-secret") for m in self._known.finditer(text))
        lowered = _ascii_lower(text)
        for priority, rule in enumerate(self._rules):
            for match in rule.regex.finditer(lowered if rule.lowered else text):
                span = rule.span(match, text)
                if span is not None and span[1] > span[0]:
                    found.append((span[0], -span[1], priority, rule.kind))
        return _merge(sorted(found))

    def redact_text(self, text: str) -> tuple[str, int]:
        """`text` with every secret replaced by its placeholder, and how many were replaced."""
        findings = self.scan(text)
        if not findings:
            return text, 0
        pieces: list[str] = []
        position = 0
        for finding in findings:
            pieces.append(text[position : finding.start])
            pieces.append(self.placeholder(finding.kind, text[finding.start : finding.end]))
            position = finding.end
        pieces.append(text[position:])
        return "".join(pieces), len(findings)

    def placeholder(self, kind: str, secret: str) -> str:
        """The stable placeholder of `secret`: its kind and a short keyed hash that does not reveal it."""
        digest = hmac.new(self._key, secret.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()[:8]
        return f"{PLACEHOLDER_PREFIX}{kind}:{digest}»"

    def redact_messages(self, messages: list[Message]) -> tuple[list[Message], int]:
        """Copies of `messages` with secrets redacted in text content, text parts, http(s) image URLs and tool-call
        arguments, and the total count. The input messages are never modified."""
        redacted: list[Message] = []
        total = 0
        for message in messages:
            copy, count = self._redact_message(message)
            redacted.append(copy)
            total += count
        return redacted, total

    def _redact_message(self, message: Message) -> tuple[Message, int]:
        count = 0
        content = message.content
        if isinstance(content, str):
            content, count = self.redact_text(content)
        elif content is not None:
            parts: list[TextPart | ImagePart] = []
            for part in content:
                new_part, part_count = self._redact_part(part)
                parts.append(new_part)
                count += part_count
            content = parts
        tool_calls = None
        if message.tool_calls is not None:
            tool_calls = []
            for call in message.tool_calls:
                arguments, call_count = self.redact_text(call.arguments)
                tool_calls.append(ToolCall(id=call.id, name=call.name, arguments=arguments))
                count += call_count
        return message.model_copy(update={"content": content, "tool_calls": tool_calls}), count

    def _redact_part(self, part: TextPart | ImagePart) -> tuple[TextPart | ImagePart, int]:
        if isinstance(part, TextPart):
            text, count = self.redact_text(part.text)
            return TextPart(text=text), count
        # A data: URL is the image itself (megabytes of base64, no credentials); an http(s) URL may carry a token.
        if part.url.startswith("data:"):
            return part.model_copy(), 0
        url, count = self.redact_text(part.url)
        return ImagePart(url=url), count


_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


def _ascii_lower(text: str) -> str:
    """`text` lower-cased with every offset unchanged. str.lower() is fast but may change the length (a few
    characters, such as "İ", lower to two); only then the slower ASCII-only translation is used."""
    lowered = text.lower()
    return lowered if len(lowered) == len(text) else text.translate(_ASCII_LOWER)


def _merge(found: list[tuple[int, int, int, str]]) -> list[Finding]:
    """Merge sorted (start, -end, priority, kind) finds into non-overlapping Findings.

    Overlaps are unioned rather than dropped, so no part of any secret survives.
    """
    merged: list[Finding] = []
    for start, negative_end, _priority, kind in found:
        end = -negative_end
        if merged and start < merged[-1].end:
            last = merged[-1]
            if end > last.end:
                merged[-1] = Finding(last.start, end, last.kind)
            continue
        merged.append(Finding(start, end, kind))
    return merged


def installation_key(folder: Path | None = None) -> bytes:
    """The per-user HMAC key for placeholders, created on first use (readable by the user only).

    When the data folder cannot be written, a key for this process alone is used and a warning logged:
    placeholders then stay stable within the run but not across runs.
    """
    key_file = (folder or paths.user_data_dir()) / KEY_FILE_NAME
    try:
        existing = key_file.read_bytes()
        if len(existing) >= _KEY_BYTES:
            return existing
    except FileNotFoundError:
        pass
    except OSError as exc:
        log.warning("cannot read %s (%s); redaction placeholders will change between runs", key_file, exc)
        return _process_key()
    return _create_key(key_file)


def _create_key(key_file: Path) -> bytes:
    temporary = key_file.with_name(f"{key_file.name}.{os.getpid()}.tmp")
    try:
        key_file.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(os.urandom(_KEY_BYTES))
        # link() fails when the file exists, so of two processes creating the key at once, the first one wins
        # and both read its key.
        try:
            os.link(temporary, key_file)
        except FileExistsError:
            pass
        return key_file.read_bytes()
    except OSError as exc:
        log.warning("cannot write %s (%s); redaction placeholders will change between runs", key_file, exc)
        return _process_key()
    finally:
        temporary.unlink(missing_ok=True)


_PROCESS_KEY = os.urandom(_KEY_BYTES)


def _process_key() -> bytes:
    return _PROCESS_KEY


def redactor_for(settings: Settings, environ: Mapping[str, str]) -> Redactor:
    """A Redactor that also knows the values of every configured key variable present in `environ`."""
    names = {m.key_env for m in settings.models.values() if m.key_env}
    if settings.index.api_key_env:
        names.add(settings.index.api_key_env)
    return Redactor(known_secrets=sorted(v for n in names if (v := environ.get(n))))
