"""The on-disk response cache: identical requests to the same model are answered from disk at no cost.

diskcache (SQLite + files) rather than LiteLLM's own cache, whose hit path imports fastapi, orjson and soundfile
(STACK.md). Values are stored as JSON text, never pickles, so a tampered cache file cannot run code.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field, ValidationError

from aetherflow.llm.types import ToolCall, Usage

if TYPE_CHECKING:
    import diskcache


class CachedReply(BaseModel):
    """A complete, successful reply as it is stored in the cache."""

    text: str = ""
    tool_calls: list[ToolCall] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)
    finish_reason: str | None = None
    model_id: str


def cache_key(
    *,
    model_id: str,
    api_base: str | None,
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]] | None,
    response_format: dict[str, Any] | None,
    temperature: float | None,
    max_tokens: int | None,
) -> str:
    """A sha256 over everything that changes a model's output. Messages are the redacted ones actually sent."""
    payload = {
        "model": model_id,
        "api_base": api_base,
        "messages": messages,
        "tools": tools,
        "response_format": response_format,
        "temperature": temperature,
        "max_tokens": max_tokens,
    }
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class ResponseCache:
    """A size-bounded, expiring cache of replies keyed by `cache_key`. The SQLite file is opened on first use."""

    def __init__(self, directory: Path, *, size_limit_mb: int, ttl_seconds: int) -> None:
        self.directory = directory
        self._size_limit = size_limit_mb * 1024 * 1024
        self._ttl = ttl_seconds
        self._cache: diskcache.Cache | None = None

    def _open(self) -> diskcache.Cache:
        if self._cache is None:
            import diskcache

            self.directory.mkdir(parents=True, exist_ok=True)
            self._cache = diskcache.Cache(str(self.directory), size_limit=self._size_limit)
        return self._cache

    def get(self, key: str) -> CachedReply | None:
        """The stored reply, or None when absent, expired or unreadable (an unreadable entry is dropped)."""
        raw = self._open().get(key)
        if not isinstance(raw, str):
            return None
        try:
            return CachedReply.model_validate_json(raw)
        except ValidationError:
            self._open().delete(key)
            return None

    def put(self, key: str, reply: CachedReply) -> None:
        """Store `reply` for the configured time to live."""
        self._open().set(key, reply.model_dump_json(), expire=self._ttl)

    def close(self) -> None:
        """Close the SQLite connection (reopened on next use)."""
        if self._cache is not None:
            self._cache.close()
            self._cache = None
