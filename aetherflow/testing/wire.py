"""OpenAI chat-completions wire objects, built from a scripted Reply.

Shapes follow OpenAI's API reference: `chat.completion` for a whole reply, `chat.completion.chunk` for each
streamed delta (role first, content word by word, tool calls with id and name first and arguments in pieces, a
finish chunk, then a usage chunk with empty `choices` when `stream_options.include_usage` is true).
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from typing import Any

from aetherflow.testing.script import RecordedRequest, Reply

# Arguments stream in pieces this long, so a client must reassemble them as it would from a real provider.
ARGUMENT_PIECE_CHARS = 8
_WORD = re.compile(r"\s*\S+\s*|\s+")


def split_words(text: str) -> list[str]:
    """Split text into word pieces that keep their surrounding spaces, so `"".join(pieces) == text`."""
    return _WORD.findall(text)


def split_fixed(text: str, size: int = ARGUMENT_PIECE_CHARS) -> list[str]:
    """Split text into pieces of at most `size` characters (none for an empty text)."""
    return [text[i : i + size] for i in range(0, len(text), size)]


@dataclass(frozen=True)
class Completion:
    """Everything needed to answer one request with one Reply, in either form."""

    reply: Reply
    request: RecordedRequest
    number: int
    created: int

    @classmethod
    def build(cls, reply: Reply, request: RecordedRequest, number: int) -> Completion:
        return cls(reply=reply, request=request, number=number, created=int(time.time()))

    @property
    def id(self) -> str:
        return f"chatcmpl-scripted-{self.number}"

    @property
    def model(self) -> str:
        return self.reply.model or str(self.request.body.get("model", "scripted"))

    @property
    def finish_reason(self) -> str:
        if self.reply.finish_reason:
            return self.reply.finish_reason
        return "tool_calls" if self.reply.tool_calls else "stop"

    def tool_call_id(self, index: int) -> str:
        return self.reply.tool_calls[index].id or f"call_{self.number}_{index}"

    # ---- pieces and usage -------------------------------------------------------------------------------

    def content_deltas(self) -> list[dict[str, Any]]:
        """The deltas after the role chunk: text words, then each tool call (header, then argument pieces).

        With `Reply.chunk_chars`, text and arguments go in pieces of that size instead.
        """
        size = self.reply.chunk_chars
        words = split_words(self.reply.content) if size is None else split_fixed(self.reply.content, size)
        deltas: list[dict[str, Any]] = [{"content": word} for word in words]
        for index, call in enumerate(self.reply.tool_calls):
            head = {"index": index, "id": self.tool_call_id(index), "type": "function",
                    "function": {"name": call.name, "arguments": ""}}
            deltas.append({"tool_calls": [head]})
            for piece in split_fixed(call.arguments_text(), size or ARGUMENT_PIECE_CHARS):
                deltas.append({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
        return deltas

    def usage(self) -> dict[str, Any]:
        """OpenAI usage: scripted figures, else a character count / 4 and the number of content pieces."""
        prompt = self.reply.prompt_tokens
        if prompt is None:
            prompt = max(1, len(self.request.message_text()) // 4)
        completion = self.reply.completion_tokens
        if completion is None:
            completion = len(split_words(self.reply.content)) + sum(
                len(split_fixed(c.arguments_text())) for c in self.reply.tool_calls
            )
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": self.reply.cached_tokens or 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
        }

    # ---- whole reply ------------------------------------------------------------------------------------

    def message(self) -> dict[str, Any]:
        content = self.reply.content
        message: dict[str, Any] = {"role": "assistant", "content": content or None, "refusal": None}
        if self.reply.tool_calls:
            message["tool_calls"] = [
                {"id": self.tool_call_id(i), "type": "function",
                 "function": {"name": c.name, "arguments": c.arguments_text()}}
                for i, c in enumerate(self.reply.tool_calls)
            ]
        return message

    def completion_object(self) -> dict[str, Any]:
        """The `chat.completion` object of a non-streamed reply."""
        return {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": None,
            "choices": [
                {"index": 0, "message": self.message(), "logprobs": None, "finish_reason": self.finish_reason}
            ],
            "usage": self.usage(),
        }

    # ---- streamed reply ---------------------------------------------------------------------------------

    def chunk(self, delta: dict[str, Any] | None, finish_reason: str | None = None) -> dict[str, Any]:
        """A `chat.completion.chunk`; `delta=None` gives the usage chunk with empty `choices`."""
        body: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": None,
        }
        if delta is None:
            body["choices"] = []
            body["usage"] = self.usage()
        else:
            body["choices"] = [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]
            if self.wants_usage():
                # OpenAI sends `usage: null` on every chunk but the last when usage was asked for.
                body["usage"] = None
        return body

    def role_chunk(self) -> dict[str, Any]:
        # OpenAI opens with an empty content, or null content when the reply is only tool calls.
        return self.chunk({"role": "assistant", "content": "" if self.reply.content else None, "refusal": None})

    def finish_chunk(self) -> dict[str, Any]:
        return self.chunk({}, self.finish_reason)

    def wants_usage(self) -> bool:
        options = self.request.body.get("stream_options")
        return isinstance(options, dict) and bool(options.get("include_usage"))


def sse_event(payload: dict[str, Any] | str) -> bytes:
    """One server-sent event: `data: <json>` and a blank line."""
    data = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
    return f"data: {data}\n\n".encode()


def error_body(status: int, message: str) -> dict[str, Any]:
    """OpenAI's error object for a status."""
    kinds = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error",
             429: "rate_limit_error"}
    kind = kinds.get(status, "server_error" if status >= 500 else "invalid_request_error")
    return {"error": {"message": message, "type": kind, "param": None, "code": kind}}
