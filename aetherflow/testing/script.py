"""What a test tells the scripted server to do: replies, faults, and the requests it saw.

These are plain frozen dataclasses rather than pydantic models because `Reply.json` is a natural field name that
would shadow `BaseModel.json`, and because a script is written by tests, not read from a boundary.
"""

from __future__ import annotations

import json as jsonlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, kw_only=True)
class ToolCallSpec:
    """A tool call the scripted model makes.

    `arguments` is a dict (sent as JSON) or a raw string (sent verbatim, so a test can send invalid JSON).
    `id` defaults to a deterministic `call_<request>_<index>`.
    """

    name: str
    arguments: dict[str, Any] | str = field(default_factory=dict)
    id: str | None = None

    def arguments_text(self) -> str:
        """The arguments exactly as they go on the wire."""
        if isinstance(self.arguments, str):
            return self.arguments
        return jsonlib.dumps(self.arguments)


@dataclass(frozen=True, kw_only=True)
class Reply:
    """A successful chat completion, streamed or not depending on the request.

    Token counts default to rough figures (see `aetherflow.testing.wire.default_usage`). `cached_tokens` goes
    to `usage.prompt_tokens_details.cached_tokens` and, as with OpenAI, is part of `prompt_tokens`.
    Latency: the first chunk waits `ttft_s`; each later chunk waits `1 / tokens_per_s`. A non-streamed reply
    waits the same total before it is sent. `truncate_after_chunks` cuts a stream after that many content
    chunks (or at the end of the content, whichever is first): no finish chunk, no usage, no `[DONE]`, and the
    connection is closed mid-body. A non-streamed reply with it set sends half its body, then closes.
    `chunk_chars` streams text and tool arguments in pieces of that many characters instead of word by word and
    8 characters at a time, as providers that send large chunks (or a whole tool call at once) do; it keeps a
    reply of megabytes to a few chunks, so tests of huge replies measure the product rather than the wire.
    """

    text: str = ""
    tool_calls: list[ToolCallSpec] = field(default_factory=list)
    json: Any = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_tokens: int | None = None
    ttft_s: float = 0.0
    tokens_per_s: float | None = None
    truncate_after_chunks: int | None = None
    model: str | None = None
    finish_reason: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    chunk_chars: int | None = None

    def __post_init__(self) -> None:
        if self.json is not None and self.text:
            raise ValueError("Reply takes `text` or `json`, not both")
        if self.chunk_chars is not None and self.chunk_chars < 1:
            raise ValueError("Reply.chunk_chars must be >= 1")
        if self.tokens_per_s is not None and self.tokens_per_s <= 0:
            raise ValueError("Reply.tokens_per_s must be positive")
        if self.truncate_after_chunks is not None and self.truncate_after_chunks < 0:
            raise ValueError("Reply.truncate_after_chunks must be >= 0")

    @property
    def content(self) -> str:
        """The assistant message content: `text`, or `json` serialised."""
        return jsonlib.dumps(self.json) if self.json is not None else self.text

    def chunk_delay_s(self) -> float:
        """Seconds between two streamed chunks after the first."""
        return 1.0 / self.tokens_per_s if self.tokens_per_s else 0.0


@dataclass(frozen=True, kw_only=True)
class Fault:
    """A failed answer.

    - `status` with an OpenAI-style error body (`retry_after` adds a `Retry-After` header, in seconds).
      `body` replaces that error body with any JSON object, to mimic a particular server's errors (FastAPI's
      422 `detail` list, llama-cpp-python's 500 wrapping a validation error).
    - `hang=True`: read the request, then never answer until the server stops (the client's timeout decides).
    - `malformed=True`: status 200 whose body is not valid JSON (or a stream with a broken `data:` event).
    """

    status: int = 500
    retry_after: float | None = None
    message: str | None = None
    hang: bool = False
    malformed: bool = False
    body: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.hang and self.malformed:
            raise ValueError("Fault takes `hang` or `malformed`, not both")
        if self.body is not None and (self.hang or self.malformed or self.message is not None):
            raise ValueError("Fault.body is the whole error body: it takes no `message`, `hang` or `malformed`")
        if not (self.hang or self.malformed) and self.status < 400:
            raise ValueError(f"Fault.status must be an error status (>= 400), got {self.status}")


@dataclass(frozen=True)
class RecordedRequest:
    """One request the server received.

    `headers` has lower-case names. `body` is the parsed JSON object ({} for GET or an unparsable body, whose
    bytes stay in `raw_body`). `ts` is `time.monotonic()` when the request was fully read, so tests can measure
    the gaps between attempts (a retry honouring Retry-After).
    """

    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    raw_body: bytes
    ts: float

    @property
    def stream(self) -> bool:
        """True when the client asked for a streamed reply."""
        return bool(self.body.get("stream"))

    def message_text(self) -> str:
        """Every message's text, joined by newlines (content strings and text parts)."""
        return "\n".join(_text_of(m.get("content")) for m in self.body.get("messages", []) if isinstance(m, dict))


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


Action = Reply | Fault
Script = Callable[[RecordedRequest], Action | None]
