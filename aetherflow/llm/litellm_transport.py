"""The Transport for every remote or OpenAI-compatible model: one streamed `litellm.acompletion` per attempt.

It never retries (max_retries=0 and num_retries=0 switch off both LiteLLM's and the OpenAI SDK's own loops, so
the gateway's is the only one), assembles streamed tool-call fragments into whole ToolCalls, and turns every
provider failure into a TransportError that says whether a retry can help and how long the provider asked us
to wait.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from aetherflow.llm.transport import (
    MAX_REPLY_CHARS,
    TransportChunk,
    TransportError,
    TransportRequest,
    refused_part,
    reply_too_large,
)
from aetherflow.llm.types import ToolCall
from aetherflow.llm.usage import usage_from_litellm

RETRYABLE_STATUS = frozenset({408, 409, 429})
# Without a key LiteLLM falls back to OPENAI_API_KEY from the process environment; for a keyless
# OpenAI-compatible server (vLLM, a LiteLLM proxy without auth) we send this instead, so a real OpenAI key
# never goes to a third-party api_base.
KEYLESS_PLACEHOLDER = "no-key"
_MAX_MESSAGE_CHARS = 600


@dataclass
class _ToolCallParts:
    id: str | None = None
    name: str = ""
    arguments: list[str] = field(default_factory=list)


class _Assembler:
    """Collects one stream's tool-call fragments, finish reason and usage, and counts the characters received."""

    def __init__(self) -> None:
        self.tool_calls: dict[int, _ToolCallParts] = {}
        self.finish_reason: str | None = None
        self.usage: object = None
        self.model_id: str | None = None
        self.chars = 0

    def count(self, chars: int) -> None:
        """Add `chars` received; past MAX_REPLY_CHARS the reply is refused before more of it is buffered."""
        self.chars += chars
        if self.chars > MAX_REPLY_CHARS:
            raise reply_too_large()

    def add_tool_delta(self, delta: Any, position: int) -> None:
        index = delta.index if isinstance(getattr(delta, "index", None), int) else position
        parts = self.tool_calls.setdefault(index, _ToolCallParts())
        if delta.id:
            parts.id = delta.id
        function = getattr(delta, "function", None)
        if function is not None:
            if function.name:
                parts.name += function.name
            if function.arguments:
                self.count(len(function.arguments))
                parts.arguments.append(function.arguments)

    def whole_tool_calls(self) -> list[ToolCall] | None:
        if not self.tool_calls:
            return None
        return [
            ToolCall(id=parts.id or f"call_{index}", name=parts.name, arguments="".join(parts.arguments) or "{}")
            for index, parts in sorted(self.tool_calls.items())
        ]


class LiteLLMTransport:
    """Reaches any LiteLLM model id.

    LiteLLM is imported when the transport is built (the gateway builds it on the first call to a remote model),
    not on the first request: the import takes seconds and must not count against an attempt's timeout.
    """

    def __init__(self) -> None:
        from aetherflow.llm._litellm import import_litellm

        self._litellm = import_litellm()

    async def stream(self, request: TransportRequest) -> AsyncIterator[TransportChunk]:
        """Stream the reply: text chunks as they come, then one chunk with tool calls, usage and finish reason.

        A stream that ends without a finish reason (cut off) ends with finish_reason None; the gateway treats
        that as a retryable failure. A reply past MAX_REPLY_CHARS is abandoned (the connection is closed).
        """
        import openai

        response: Any = None
        streaming = False
        try:
            response = await self._litellm.acompletion(**completion_kwargs(request))
            assembler = _Assembler()
            streaming = True
            async for chunk in response:
                text = _absorb(chunk, assembler)
                if text:
                    assembler.count(len(text))
                    yield TransportChunk(text=text)
            yield TransportChunk(
                tool_calls=assembler.whole_tool_calls(),
                usage=usage_from_litellm(assembler.usage) if assembler.usage is not None else None,
                finish_reason=assembler.finish_reason,
                model_id=assembler.model_id,
            )
        except openai.APIError as exc:
            raise transport_error(exc, mid_stream=streaming) from exc
        finally:
            if response is not None and hasattr(response, "aclose"):
                await response.aclose()

    async def aclose(self) -> None:
        """Nothing to release here: LiteLLM keeps one process-wide HTTP client cache that every transport (and
        every gateway) in the process shares, so closing it from one of them would break the others."""


def completion_kwargs(request: TransportRequest) -> dict[str, Any]:
    """The keyword arguments of `litellm.acompletion` for one attempt."""
    kwargs: dict[str, Any] = {
        "model": request.model.model,
        "messages": request.messages,
        "stream": True,
        "stream_options": {"include_usage": True},
        "timeout": request.timeout_s,
        "max_retries": 0,
        "num_retries": 0,
        # A parameter the provider lacks is dropped rather than failing the call; the gateway validates
        # structured replies itself, so a dropped response_format is caught there.
        "drop_params": True,
    }
    api_key = request.api_key
    if api_key is None and request.model.api_base and request.model.provider == "openai":
        api_key = KEYLESS_PLACEHOLDER
    optional = {
        "api_base": request.model.api_base,
        "api_key": api_key,
        "temperature": request.temperature,
        "max_tokens": request.max_tokens,
        "tools": request.tools or None,
        "response_format": request.response_format,
    }
    kwargs.update({k: v for k, v in optional.items() if v is not None})
    return kwargs


def _absorb(chunk: Any, assembler: _Assembler) -> str:
    """Record a chunk's tool-call fragments, finish reason and usage; return its text."""
    usage = getattr(chunk, "usage", None)
    if usage is not None:
        assembler.usage = usage
    if assembler.model_id is None and isinstance(getattr(chunk, "model", None), str):
        assembler.model_id = chunk.model
    text = ""
    for choice in getattr(chunk, "choices", None) or []:
        delta = getattr(choice, "delta", None)
        if delta is not None:
            text += delta.content or ""
            for position, tool_delta in enumerate(getattr(delta, "tool_calls", None) or []):
                assembler.add_tool_delta(tool_delta, position)
        if choice.finish_reason:
            assembler.finish_reason = choice.finish_reason
    return text


def transport_error(exc: Exception, *, mid_stream: bool = False) -> TransportError:
    """Classify a LiteLLM / OpenAI SDK exception: retryable for 408/409/429/5xx, timeouts and lost connections;
    never for a request whose shape the server refused (`transport.refused_part`), whatever its status.

    `mid_stream`: the reply had begun. A connection lost then is reported as a reply that broke off: LiteLLM wraps it
    in an error with status 500, which would blame the provider for an HTTP error it never sent.
    """
    import openai

    if mid_stream and _connection_lost(exc):
        return TransportError(
            "the reply broke off mid-stream: the connection closed before the reply was complete", retryable=True
        )
    status = getattr(exc, "status_code", None)
    status = status if isinstance(status, int) else None
    if isinstance(exc, openai.APITimeoutError):
        retryable, status = True, status or 408
    elif isinstance(exc, openai.APIConnectionError) or status is None:
        retryable = True
    else:
        retryable = status in RETRYABLE_STATUS or status >= 500
    message = str(exc)
    if len(message) > _MAX_MESSAGE_CHARS:
        message = message[:_MAX_MESSAGE_CHARS] + " ..."
    # The OpenAI SDK (and LiteLLM's exceptions, its subclasses) keep the parsed error body in `body`.
    refused = refused_part(status, exc.body) if isinstance(exc, openai.APIError) else None
    return TransportError(
        message, status=status, retryable=retryable, retry_after_s=retry_after_s(exc), refused=refused
    )


def _connection_lost(exc: Exception) -> bool:
    """The error, or the one LiteLLM wrapped in it (MidStreamFallbackError.original_exception), is a lost connection."""
    import openai

    original = getattr(exc, "original_exception", None)
    return any(isinstance(e, openai.APIConnectionError) and not isinstance(e, openai.APITimeoutError)
               for e in (exc, original))


def _headers_of(exc: Exception) -> Mapping[str, str] | None:
    """The provider's response headers: LiteLLM attaches them as `litellm_response_headers`; the SDK's
    exceptions carry the httpx response."""
    headers = getattr(exc, "litellm_response_headers", None)
    if headers:
        return headers
    response = getattr(exc, "response", None)
    return getattr(response, "headers", None)


def retry_after_s(exc: Exception) -> float | None:
    """Seconds the provider asked to wait: `retry-after-ms`, or `Retry-After` as seconds or an HTTP date."""
    headers = _headers_of(exc)
    if not headers:
        return None
    lowered = {str(k).lower(): str(v) for k, v in headers.items()}
    millis = _number(lowered.get("retry-after-ms"))
    if millis is not None:
        return millis / 1000.0
    raw = lowered.get("retry-after")
    if raw is None:
        return None
    seconds = _number(raw)
    if seconds is not None:
        return seconds
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _number(raw: str | None) -> float | None:
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if value >= 0 else None
