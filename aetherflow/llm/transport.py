"""The seam between the gateway and whatever actually produces tokens.

The gateway owns policy (routing to a model, retries, fallbacks, budget, cache, redaction, events). A transport
owns one way of reaching models: LiteLLM for every remote or OpenAI-compatible provider, llama-cpp in-process for
the local model. Transports never retry and never publish events; they stream chunks or raise TransportError.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Protocol

from pydantic import BaseModel

from aetherflow.config.models import ModelConfig
from aetherflow.llm.types import ToolCall, Usage

# The most characters of text plus tool-call arguments one reply may carry. The largest output limits today are
# about 128k tokens (some 0.5 M characters) and a create_file may carry 2 M characters, so only a broken or
# hostile provider gets near this; past it a transport stops reading instead of buffering without end.
MAX_REPLY_CHARS = 4_000_000


class TransportRequest(BaseModel):
    """One attempt at one model, already redacted and with prompt-cache markers applied."""

    alias: str
    model: ModelConfig
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] | None = None
    # OpenAI-style: {"type": "json_schema", "json_schema": {...}} or {"type": "json_object"}.
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
    """A failed attempt. `retryable` is decided by the transport from the status or error class."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retryable: bool = False,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retryable = retryable
        self.retry_after_s = retry_after_s


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
