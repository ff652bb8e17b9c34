"""A light Transport for providers that speak OpenAI's chat-completions API, straight over httpx.

LiteLLM takes 2 to 8 s to import, more than a pre-commit hook may spend in total; this transport imports only
httpx (already a dependency). The gateway uses it when asked for the light path (`Gateway(light_transport=True)`)
and only for the providers below; Anthropic, Gemini and everything else keep LiteLLM even then.

Semantics match `litellm_transport`: one streamed request per attempt, never a retry of its own, usage from the
final chunk (`stream_options.include_usage`), tool-call fragments assembled into whole calls, and every failure a
TransportError that is retryable for 408/409/429/5xx, timeouts and lost connections, with Retry-After honoured,
and never retryable when the error body shows the server refused the request's shape (`transport.refused_part`).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aetherflow.config.models import ModelConfig
from aetherflow.llm.litellm_transport import KEYLESS_PLACEHOLDER, RETRYABLE_STATUS, retry_after_s
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

if TYPE_CHECKING:
    import httpx

_MAX_MESSAGE_CHARS = 600


@dataclass(frozen=True)
class Profile:
    """What differs between OpenAI-compatible providers, as far as one chat completion is concerned."""

    base_url: str
    # Accepts `stream_options` (Mistral rejects it, but sends usage in its last chunk anyway).
    usage_option: bool = True
    # Accepts response_format json_schema; otherwise JSON mode is asked for and the gateway checks the schema.
    json_schema: bool = True
    # Streams while a response_format is set (Groq does not: such requests are sent unstreamed).
    stream_with_format: bool = True


PROFILES: dict[str, Profile] = {
    "openai": Profile("https://api.openai.com/v1"),
    "deepseek": Profile("https://api.deepseek.com", json_schema=False),
    "groq": Profile("https://api.groq.com/openai/v1", json_schema=False, stream_with_format=False),
    "mistral": Profile("https://api.mistral.ai/v1", usage_option=False),
    "openrouter": Profile("https://openrouter.ai/api/v1"),
}


def supports(model: ModelConfig) -> bool:
    """Whether `model` can go through this transport (a remote model of a provider listed in PROFILES)."""
    return not model.embedded and "/" in model.model and model.provider in PROFILES


def endpoint(model: ModelConfig) -> str:
    """The chat-completions URL of `model`: its api_base when set, else its provider's."""
    base = model.api_base or PROFILES[model.provider].base_url
    base = base.rstrip("/")
    return base if base.endswith("/chat/completions") else f"{base}/chat/completions"


def request_body(request: TransportRequest) -> tuple[dict[str, Any], bool]:
    """The JSON body of one attempt, and whether it is streamed."""
    model = request.model
    profile = PROFILES[model.provider]
    response_format = request.response_format
    if response_format is not None and response_format.get("type") == "json_schema" and not profile.json_schema:
        response_format = {"type": "json_object"}
    stream = profile.stream_with_format or response_format is None
    body: dict[str, Any] = {"model": model.model.split("/", 1)[1], "messages": request.messages, "stream": stream}
    if stream and profile.usage_option:
        body["stream_options"] = {"include_usage": True}
    optional = {
        "temperature": request.temperature,
        "max_tokens": request.max_tokens,
        "tools": request.tools or None,
        "response_format": response_format,
    }
    body.update({k: v for k, v in optional.items() if v is not None})
    return body, stream


@dataclass
class _ToolParts:
    id: str | None = None
    name: str = ""
    arguments: list[str] = field(default_factory=list)


@dataclass
class _Reading:
    """What one reply carried besides its text: tool-call fragments, usage, finish reason, model id."""

    tools: dict[int, _ToolParts] = field(default_factory=dict)
    usage: object = None
    finish_reason: str | None = None
    model_id: str | None = None
    chars: int = 0

    def count(self, chars: int) -> None:
        """Add `chars` received; past MAX_REPLY_CHARS the reply is refused before more of it is buffered."""
        self.chars += chars
        if self.chars > MAX_REPLY_CHARS:
            raise reply_too_large()

    def absorb(self, payload: dict[str, Any], key: str) -> str:
        """Record one chunk (`key` "delta") or a whole reply (`key` "message"); return its text."""
        if isinstance(payload.get("error"), dict):
            raise TransportError(f"provider error in the reply: {_clip(json.dumps(payload['error']))}", retryable=True)
        if payload.get("usage"):
            self.usage = payload["usage"]
        if self.model_id is None and isinstance(payload.get("model"), str):
            self.model_id = payload["model"]
        text = ""
        for choice in payload.get("choices") or []:
            part = choice.get(key) or {}
            text += part.get("content") or ""
            for position, delta in enumerate(part.get("tool_calls") or []):
                self._add_tool(delta, position)
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
        self.count(len(text))
        return text

    def _add_tool(self, delta: dict[str, Any], position: int) -> None:
        index = delta["index"] if isinstance(delta.get("index"), int) else position
        parts = self.tools.setdefault(index, _ToolParts())
        parts.id = delta.get("id") or parts.id
        function = delta.get("function") or {}
        parts.name += function.get("name") or ""
        if function.get("arguments"):
            self.count(len(function["arguments"]))
            parts.arguments.append(function["arguments"])

    def last_chunk(self) -> TransportChunk:
        calls = [
            ToolCall(id=p.id or f"call_{i}", name=p.name, arguments="".join(p.arguments) or "{}")
            for i, p in sorted(self.tools.items())
        ]
        return TransportChunk(
            tool_calls=calls or None,
            usage=usage_from_litellm(self.usage) if self.usage is not None else None,
            finish_reason=self.finish_reason,
            model_id=self.model_id,
        )


class OpenAICompatTransport:
    """Reaches OpenAI-compatible providers with one shared httpx client (created on first use)."""

    def __init__(self) -> None:
        self._client: httpx.AsyncClient | None = None

    def _http(self) -> httpx.AsyncClient:
        import httpx

        if self._client is None:
            # trust_env=False: no proxy or netrc credentials picked up from the environment behind the user's back.
            self._client = httpx.AsyncClient(trust_env=False, follow_redirects=False)
        return self._client

    async def stream(self, request: TransportRequest) -> AsyncIterator[TransportChunk]:
        """Text chunks as they come, then one chunk with tool calls, usage and finish reason."""
        import httpx

        body, streamed = request_body(request)
        headers = {"Authorization": f"Bearer {request.api_key or KEYLESS_PLACEHOLDER}"}
        timeout = httpx.Timeout(request.timeout_s)
        reading = _Reading()
        try:
            async with self._http().stream(
                "POST", endpoint(request.model), json=body, headers=headers, timeout=timeout
            ) as response:
                if response.status_code >= 400:
                    await response.aread()
                    raise status_error(response)
                if streamed:
                    async for text in _sse_texts(response, reading):
                        yield TransportChunk(text=text)
                else:
                    text = reading.absorb(_json(await _read_capped(response)), "message")
                    if text:
                        yield TransportChunk(text=text)
        except httpx.TimeoutException as exc:
            raise TransportError(f"timed out: {type(exc).__name__}", status=408, retryable=True) from exc
        except httpx.HTTPError as exc:
            raise TransportError(f"connection failed: {type(exc).__name__}: {exc}", retryable=True) from exc
        yield reading.last_chunk()

    async def aclose(self) -> None:
        """Close the HTTP client and its connections."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None


async def _sse_texts(response: httpx.Response, reading: _Reading) -> AsyncIterator[str]:
    """The text of each server-sent event, recording the rest in `reading`; stops at `[DONE]`."""
    async for line in response.aiter_lines():
        if not line.startswith("data:"):
            continue  # blank separators, comments (": keep-alive"), event names
        data = line[5:].strip()
        if data == "[DONE]":
            return
        text = reading.absorb(_json(data.encode()), "delta")
        if text:
            yield text


async def _read_capped(response: httpx.Response) -> bytes:
    """A whole (unstreamed) body, refused once it is larger than any reply within MAX_REPLY_CHARS can be: JSON
    escaping at most doubles the characters, and UTF-8 takes up to 4 bytes for one of them."""
    limit = 8 * MAX_REPLY_CHARS
    parts: list[bytes] = []
    size = 0
    async for part in response.aiter_bytes():
        size += len(part)
        if size > limit:
            raise reply_too_large()
        parts.append(part)
    return b"".join(parts)


def _json(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise TransportError(f"the provider sent invalid JSON: {_clip(raw.decode('utf-8', 'replace'))}",
                             retryable=True) from exc
    if not isinstance(value, dict):
        raise TransportError("the provider sent JSON that is not an object", retryable=True)
    return value


def status_error(response: httpx.Response) -> TransportError:
    """A TransportError for an HTTP error status: retryable for 408/409/429/5xx, with the wait it asked for."""
    import httpx

    status = response.status_code
    detail = response.text
    try:
        body: object = response.json()
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        detail = error["message"]
    message = f"{_clip(detail)} (from {response.request.url.host})"
    retryable = status in RETRYABLE_STATUS or status >= 500
    wait = retry_after_s(httpx.HTTPStatusError(message, request=response.request, response=response))
    return TransportError(
        message, status=status, retryable=retryable, retry_after_s=wait, refused=refused_part(status, body)
    )


def _clip(text: str) -> str:
    return text if len(text) <= _MAX_MESSAGE_CHARS else text[:_MAX_MESSAGE_CHARS] + " ..."
