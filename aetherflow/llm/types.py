"""The data that crosses the gateway boundary: requests, messages, usage, results.

These are plain pydantic models with no provider knowledge, so the orchestrator, the UI and the tests can build
and read them without importing LiteLLM.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Role = Literal["system", "user", "assistant", "tool"]


class ImagePart(BaseModel):
    """An image attached to a user message (a data: URL or an https URL)."""

    type: Literal["image_url"] = "image_url"
    url: str


class TextPart(BaseModel):
    """A text fragment of a multi-part message."""

    type: Literal["text"] = "text"
    text: str


class ToolCall(BaseModel):
    """A tool call requested by the model. `arguments` is the raw JSON text the model produced."""

    id: str
    name: str
    arguments: str = "{}"

    def parsed_arguments(self) -> dict[str, Any]:
        """The arguments as a dict; raises ValueError when the model produced invalid JSON or a non-object."""
        value = json.loads(self.arguments or "{}")
        if not isinstance(value, dict):
            raise ValueError(f"tool arguments must be a JSON object, got {type(value).__name__}")
        return value


class Message(BaseModel):
    """One chat message in OpenAI form."""

    role: Role
    content: str | list[TextPart | ImagePart] | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None
    name: str | None = None
    # Marks the end of the stable prefix (system prompt, repository context) for provider prompt caching.
    cache_prefix: bool = False

    def text(self) -> str:
        """The textual content, parts joined."""
        if isinstance(self.content, str):
            return self.content
        if not self.content:
            return ""
        return "".join(p.text for p in self.content if isinstance(p, TextPart))


class ToolSpec(BaseModel):
    """A tool offered to the model: name, description and JSON schema of its arguments."""

    name: str
    description: str
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})


class Usage(BaseModel):
    """Token counts of one call. Cached tokens are a subset of prompt tokens."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_read_tokens: int = 0
    cache_write_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class CallRequest(BaseModel):
    """What a caller asks of the gateway.

    `alias` names a model in the catalogue, or `agent` names an agent prototype whose model, fallbacks,
    temperature and output limits apply (explicit fields here win). `output_schema` asks for a parsed pydantic
    object in the result.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    messages: list[Message]
    alias: str | None = None
    agent: str | None = None
    tools: list[ToolSpec] | None = None
    output_schema: type[BaseModel] | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    stream: bool = True
    use_cache: bool = True
    run_id: str | None = None
    task_id: str | None = None


class CallResult(BaseModel):
    """The outcome of one gateway call, after retries and fallbacks."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    call_id: str
    text: str = ""
    tool_calls: list[ToolCall] = Field(default_factory=list)
    parsed: BaseModel | None = None
    usage: Usage = Field(default_factory=Usage)
    cost_usd: float = 0.0
    latency_s: float = 0.0
    ttft_s: float | None = None
    alias: str
    model_id: str
    cache_hit: bool = False
    retries: int = 0
    fallbacks: list[str] = Field(default_factory=list)
    redactions: int = 0
    finish_reason: str | None = None


class TextDelta(BaseModel):
    """A piece of streamed text, yielded by `Gateway.stream` before the final CallResult."""

    call_id: str
    text: str
