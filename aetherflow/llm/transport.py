"""The seam between the gateway and whatever actually produces tokens.

The gateway owns policy (routing to a model, retries, fallbacks, budget, cache, redaction, events). A transport
owns one way of reaching models: LiteLLM for every remote or OpenAI-compatible provider, llama-cpp in-process for
the local model. Transports never retry and never publish events; they stream chunks or raise TransportError.
"""

from __future__ import annotations

import ast
from collections.abc import AsyncIterator, Mapping
from typing import Any, Literal, Protocol

from pydantic import BaseModel

from aetherflow.config.models import ModelConfig
from aetherflow.llm.types import ToolCall, Usage

# The most characters of text plus tool-call arguments one reply may carry. The largest output limits today are
# about 128k tokens (some 0.5 M characters) and a create_file may carry 2 M characters, so only a broken or
# hostile provider gets near this; past it a transport stops reading instead of buffering without end.
MAX_REPLY_CHARS = 4_000_000
# The part of a request a server refused as malformed (a validation error, not a failure of the server): its
# response_format (a structured-output mode the server lacks) or another field. The same request would be refused
# again, so a refusal is never retried as is; a refused response_format makes the caller ask in another mode.
RefusedPart = Literal["response_format", "other"]
# Longest error message searched for serialised validation errors; real ones are a few hundred characters.
_MAX_PARSED_CHARS = 20_000


class TransportRequest(BaseModel):
    """One attempt at one model, already redacted and with prompt-cache markers applied."""

    alias: str
    model: ModelConfig
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] | None = None
    # OpenAI-style {"type": "json_schema", "json_schema": {...}}, or llama.cpp's {"type": "json_object", "schema": S}.
    response_format: dict[str, Any] | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    timeout_s: float = 120.0
    api_key: str | None = None


class TransportChunk(BaseModel):
    """A piece of a streamed reply. The last chunk of a stream carries `usage` and `finish_reason`.

    Tool calls are delivered whole (a transport assembles the provider's partial deltas).
    """

    text: str = ""
    tool_calls: list[ToolCall] | None = None
    usage: Usage | None = None
    finish_reason: str | None = None
    model_id: str | None = None


class TransportError(Exception):
    """A failed attempt. `retryable` is decided by the transport from the status or error class.

    `refused` names the part of the request the server refused as malformed (see `refused_part`); a refused
    request is never retryable, whatever its status.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retryable: bool = False,
        retry_after_s: float | None = None,
        refused: RefusedPart | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retryable = retryable and refused is None
        self.retry_after_s = retry_after_s
        self.refused = refused


def refused_part(status: int | None, body: object) -> RefusedPart | None:
    """Which part of the request an HTTP error `body` says the server refused, or None for any other failure.

    Decided from the body's structure, never from its wording: the fields that validation errors locate
    (`loc`) or that OpenAI names (`param`). Three shapes are known:
    - FastAPI's own 422: `{"detail": [{"loc": ["body", "response_format", ...], "type": ...}, ...]}`;
    - OpenAI's 400/422: `{"error": {"param": "response_format", ...}}`;
    - llama-cpp-python's server, which catches the 422 itself and answers 500 with
      `{"error": {"type": "internal_server_error", "message": "<the validation errors as Python literals>"}}`:
      the message is parsed as literals (ast.literal_eval, never executed) and only their `loc` is read.
    A plain 500 has none of these, so it stays a server failure (retryable).
    """
    if status is None or not 400 <= status < 600 or not isinstance(body, Mapping):
        return None
    paths = _refused_paths(status, body)
    if not paths:
        return None
    return "response_format" if any(path[:1] == ("response_format",) for path in paths) else "other"


def _refused_paths(status: int, body: Mapping[str, Any]) -> list[tuple[str, ...]]:
    """The request fields an error body locates, without the leading "body" of FastAPI locations."""
    detail = body.get("detail")
    if status == 422 and isinstance(detail, list):
        return [path for path in (_path(item) for item in detail) if path is not None]
    error = body.get("error", body)
    if not isinstance(error, Mapping):
        return []
    param = error.get("param")
    if status in (400, 422) and isinstance(param, str) and param:
        return [tuple(param.split("."))]
    message = error.get("message")
    if not isinstance(message, str) or len(message) > _MAX_PARSED_CHARS:
        return []
    return [path for path in (_path(item) for item in _literal_errors(message)) if path is not None]


def _path(item: object) -> tuple[str, ...] | None:
    """The location of one validation error (a mapping with `type` and `loc`), else None."""
    if not isinstance(item, Mapping) or not isinstance(item.get("type"), str):
        return None
    loc = item.get("loc")
    if not isinstance(loc, list | tuple) or not loc:
        return None
    parts = tuple(str(part) for part in loc)
    return parts[1:] if parts[0] == "body" else parts


def _literal_errors(message: str) -> list[object]:
    """Validation errors written into a message as Python literals: the whole message (`[{...}, ...]`) or one per
    line (FastAPI's "N validation errors:" followed by one `{...}` per line)."""
    whole = _literal(message)
    if whole is not None:
        return whole
    found: list[object] = []
    for line in message.splitlines():
        found.extend(_literal(line) or [])
    return found


def _literal(text: str) -> list[object] | None:
    """`text` read as a Python literal dict or list (as a list), else None."""
    text = text.strip()
    if not text.startswith(("{", "[")):
        return None
    try:
        value = ast.literal_eval(text)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None  # not a literal (prose, or an error whose context holds an object): nothing to read here
    return value if isinstance(value, list) else [value]


def reply_too_large() -> TransportError:
    """The failure of a reply that passed MAX_REPLY_CHARS. Not retryable: the same request would be as large again."""
    return TransportError(
        f"the reply passed {MAX_REPLY_CHARS:,} characters of text and tool-call arguments, far more than any model "
        "returns; it was cut off and discarded",
        retryable=False,
    )


class Transport(Protocol):
    """Reaches one family of models."""

    def stream(self, request: TransportRequest) -> AsyncIterator[TransportChunk]:
        """Stream the reply to `request`; raise TransportError on failure (before or during the stream)."""
        ...

    async def aclose(self) -> None:
        """Release connections or loaded models."""
        ...
