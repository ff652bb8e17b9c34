"""Normalise every provider's token usage into our Usage, where prompt_tokens INCLUDES cached tokens.

LiteLLM already maps each provider to OpenAI's convention (prompt_tokens counts cached reads and cache writes,
with the breakdown in prompt_tokens_details), but it leaves provider-specific fields beside it: Anthropic's
cache_read_input_tokens / cache_creation_input_tokens, DeepSeek's prompt_cache_hit_tokens, Gemini's
cachedContentTokenCount. This module reads whichever is present, also from raw provider dicts, so the cost
calculation sees one shape.
"""

from __future__ import annotations

from collections.abc import Mapping

from aetherflow.llm.types import Usage

# Where each provider puts cached reads and cache writes, in order of preference.
_CACHED_READ_DETAILS = ("cached_tokens",)
_CACHED_READ_FIELDS = ("cache_read_input_tokens", "prompt_cache_hit_tokens", "cachedContentTokenCount")
_CACHE_WRITE_FIELDS = ("cache_creation_input_tokens",)
_CACHE_WRITE_DETAILS = ("cache_write_tokens", "cache_creation_tokens")


def _field(obj: object, name: str) -> object:
    """A field of a dict or an attribute of an object (LiteLLM's Usage is both), None when absent."""
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def _int(obj: object, name: str) -> int | None:
    value = _field(obj, name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value)


def _first(obj: object, names: tuple[str, ...]) -> int | None:
    for name in names:
        value = _int(obj, name)
        if value is not None:
            return value
    return None


def _cached_read(usage: object) -> int:
    details = _field(usage, "prompt_tokens_details")
    from_details = _first(details, _CACHED_READ_DETAILS)
    from_fields = _first(usage, _CACHED_READ_FIELDS)
    # A provider field beats a zero in the details: some LiteLLM paths fill details with 0 by default.
    return max(from_details or 0, from_fields or 0)


def _cache_write(usage: object) -> int:
    details = _field(usage, "prompt_tokens_details")
    return max(_first(usage, _CACHE_WRITE_FIELDS) or 0, _first(details, _CACHE_WRITE_DETAILS) or 0)


def _prompt_tokens(usage: object, cached_read: int, cache_write: int) -> int:
    prompt = _int(usage, "prompt_tokens")
    if prompt is not None:
        return prompt
    anthropic_input = _int(usage, "input_tokens")
    if anthropic_input is not None:
        # Anthropic's raw input_tokens counts only the uncached part of the prompt.
        return anthropic_input + cached_read + cache_write
    return _int(usage, "promptTokenCount") or 0


def usage_from_litellm(usage_obj: object) -> Usage:
    """Our Usage from a LiteLLM Usage object, an OpenAI-style dict, or a raw Anthropic / Gemini usage dict.

    Invariant: cached_read_tokens + cache_write_tokens <= prompt_tokens. A provider that reports prompt tokens
    excluding its cache counts (detected when the cached counts alone exceed the prompt) gets them added back.
    """
    if usage_obj is None:
        return Usage()
    cached_read = _cached_read(usage_obj)
    cache_write = _cache_write(usage_obj)
    prompt = _prompt_tokens(usage_obj, cached_read, cache_write)
    if prompt < cached_read + cache_write:
        prompt += cached_read + cache_write
    completion = _first(usage_obj, ("completion_tokens", "output_tokens", "candidatesTokenCount")) or 0
    return Usage(
        prompt_tokens=max(prompt, 0),
        completion_tokens=max(completion, 0),
        cached_read_tokens=max(cached_read, 0),
        cache_write_tokens=max(cache_write, 0),
    )
