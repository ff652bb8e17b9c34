"""Turn the gateway's typed messages and tools into the OpenAI-style dicts that transports send.

Prompt-cache markers are applied here: LiteLLM passes `cache_control` parts through to Anthropic, which then
caches everything up to and including the marked block.
"""

from __future__ import annotations

from typing import Any

from aetherflow.llm.types import ImagePart, Message, TextPart, ToolSpec

EPHEMERAL = {"type": "ephemeral"}


def _part_dict(part: TextPart | ImagePart) -> dict[str, Any]:
    if isinstance(part, TextPart):
        return {"type": "text", "text": part.text}
    return {"type": "image_url", "image_url": {"url": part.url}}


def message_dict(message: Message, *, mark_cache: bool = False) -> dict[str, Any]:
    """One message in OpenAI form. With `mark_cache`, its last text block carries cache_control."""
    out: dict[str, Any] = {"role": message.role}
    content: Any = message.content
    if isinstance(content, list):
        content = [_part_dict(part) for part in content]
    if mark_cache and content:
        content = _with_cache_control(content)
    out["content"] = content
    if message.tool_calls:
        out["tool_calls"] = [
            {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}
            for call in message.tool_calls
        ]
    if message.tool_call_id is not None:
        out["tool_call_id"] = message.tool_call_id
    if message.name is not None:
        out["name"] = message.name
    return out


def _with_cache_control(content: str | list[dict[str, Any]]) -> list[dict[str, Any]]:
    parts = [{"type": "text", "text": content}] if isinstance(content, str) else [dict(p) for p in content]
    for part in reversed(parts):
        if part.get("type") == "text":
            part["cache_control"] = dict(EPHEMERAL)
            break
    return parts


def messages_dicts(messages: list[Message], *, prompt_cache: bool) -> list[dict[str, Any]]:
    """All messages in OpenAI form; `prompt_cache` turns `cache_prefix` flags into cache_control markers."""
    return [message_dict(m, mark_cache=prompt_cache and m.cache_prefix) for m in messages]


def tools_dicts(tools: list[ToolSpec] | None) -> list[dict[str, Any]] | None:
    """Tool specs in OpenAI function-calling form, or None when the request offers no tools."""
    if not tools:
        return None
    return [
        {"type": "function", "function": {"name": t.name, "description": t.description, "parameters": t.parameters}}
        for t in tools
    ]
