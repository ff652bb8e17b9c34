"""Structured output: ask for JSON matching a pydantic model, parse it, and build the one repair round.

Models with the "json_schema" capability get the provider's JSON-schema mode (`response_format`); the others get
the schema as instructions in the system message. Either way the reply is parsed and validated here, because a
provider's schema mode is a strong hint, not a guarantee.
"""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import BaseModel, ValidationError

from aetherflow.llm.types import Message

_FENCE = re.compile(r"^\s*```[A-Za-z0-9_-]*\s*\n(?P<body>.*?)\n?\s*```\s*$", re.DOTALL)
# Long replies are cut in the repair message: the model needs to see its mistake, not pay for it twice.
_MAX_ECHO_CHARS = 8000
_MAX_ERRORS = 20


def response_format_for(schema: type[BaseModel]) -> dict[str, Any]:
    """The OpenAI-style JSON-schema response format for `schema` (LiteLLM translates it per provider).

    strict is false: strict mode rejects common pydantic schemas (optional fields, defaults, free dicts).
    """
    return {
        "type": "json_schema",
        "json_schema": {"name": schema.__name__, "schema": schema.model_json_schema(), "strict": False},
    }


def schema_instructions(schema: type[BaseModel]) -> str:
    """Instructions for models without a JSON-schema mode."""
    schema_text = json.dumps(schema.model_json_schema(), indent=None, separators=(",", ":"))
    return (
        "Reply with one JSON object only, no prose and no code fences. "
        f"It must validate against this JSON schema:\n{schema_text}"
    )


def with_instructions(messages: list[Message], schema: type[BaseModel]) -> list[Message]:
    """A copy of `messages` whose system message ends with the schema instructions (one is added if absent)."""
    instructions = schema_instructions(schema)
    out = list(messages)
    for index, message in enumerate(out):
        if message.role == "system":
            out[index] = message.model_copy(update={"content": f"{message.text()}\n\n{instructions}"})
            return out
    return [Message(role="system", content=instructions), *out]


def strip_fences(text: str) -> str:
    """The JSON inside a ```json fence, or the outermost {...} span of chatty replies, else the text itself."""
    match = _FENCE.match(text)
    if match:
        return match.group("body").strip()
    stripped = text.strip()
    if stripped.startswith("{"):
        return stripped
    start, end = stripped.find("{"), stripped.rfind("}")
    return stripped[start : end + 1] if 0 <= start < end else stripped


def parse_reply(text: str, schema: type[BaseModel]) -> tuple[BaseModel | None, str]:
    """Validate a reply against `schema`: (object, "") on success, else (None, a readable list of errors)."""
    try:
        return schema.model_validate_json(strip_fences(text)), ""
    except ValidationError as exc:
        return None, format_errors(exc)


def format_errors(exc: ValidationError) -> str:
    """One line per validation error, with the JSON path of the offending field."""
    lines = []
    for error in exc.errors()[:_MAX_ERRORS]:
        where = ".".join(str(part) for part in error["loc"]) or "(root)"
        lines.append(f"- {where}: {error['msg']}")
    if len(exc.errors()) > _MAX_ERRORS:
        lines.append(f"- ... and {len(exc.errors()) - _MAX_ERRORS} more")
    return "\n".join(lines)


def repair_messages(messages: list[Message], reply: str, errors: str, schema: type[BaseModel]) -> list[Message]:
    """The conversation for the repair round: the original, the invalid reply, and what was wrong with it."""
    echoed = reply if len(reply) <= _MAX_ECHO_CHARS else reply[:_MAX_ECHO_CHARS] + "\n[... cut ...]"
    request = (
        f"Your reply does not match the required JSON schema for {schema.__name__}. Validation errors:\n"
        f"{errors}\n\nReply again with only the corrected JSON object."
    )
    return [*messages, Message(role="assistant", content=echoed), Message(role="user", content=request)]
