"""Structured output: ask for JSON matching a pydantic model, parse it, and build the one repair round.

How a model is asked depends on its structured mode (`ModelConfig.structured_mode`): "json_schema" sends OpenAI's
JSON-schema `response_format`, "json_object_schema" sends llama.cpp's grammar-constrained `{"type": "json_object",
"schema": S}`, and "prompt" puts the schema in the system message. Whatever the mode, the reply is parsed and
validated here, because a provider's schema mode is a strong hint, not a guarantee; parsing tolerates the usual
wrapping (code fences, prose around the object, trailing commas).
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel, ValidationError

from aetherflow.config.models import StructuredOutput
from aetherflow.llm.types import Message

_FENCE = re.compile(r"^\s*```[A-Za-z0-9_-]*\s*\n(?P<body>.*?)\n?\s*```\s*$", re.DOTALL)
_ANY_FENCE = re.compile(r"```[A-Za-z0-9_-]*[ \t]*\n(?P<body>.*?)```", re.DOTALL)
# Long replies are cut in the repair message: the model needs to see its mistake, not pay for it twice.
_MAX_ECHO_CHARS = 8000
_MAX_ERRORS = 20
# Places in one reply where the object may be; a reply with more candidates than this is not worth rescuing.
_MAX_CANDIDATES = 12
# The mode to ask in when a server refuses a mode's request shape: each is accepted by more servers than the last.
_FALLBACK: dict[StructuredOutput, StructuredOutput | None] = {
    "json_schema": "json_object_schema",
    "json_object_schema": "prompt",
    "prompt": None,
}


def response_format_for(schema: type[BaseModel]) -> dict[str, Any]:
    """The OpenAI-style JSON-schema response format for `schema` (LiteLLM translates it per provider).

    strict is false: strict mode rejects common pydantic schemas (optional fields, defaults, free dicts).
    """
    return {
        "type": "json_schema",
        "json_schema": {"name": schema.__name__, "schema": schema.model_json_schema(), "strict": False},
    }


def request_for(
    mode: StructuredOutput, messages: list[Message], schema: type[BaseModel]
) -> tuple[list[Message], dict[str, Any] | None]:
    """The messages and `response_format` that ask for `schema` in `mode`."""
    if mode == "json_schema":
        return messages, response_format_for(schema)
    if mode == "json_object_schema":
        # llama-cpp-python's server and llama.cpp's llama-server turn this schema into a grammar.
        return messages, {"type": "json_object", "schema": schema.model_json_schema()}
    return with_instructions(messages, schema), None


def next_mode(mode: StructuredOutput) -> StructuredOutput | None:
    """The mode to try after a server refused `mode`'s request, or None when no other is left."""
    return _FALLBACK[mode]


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
    """Validate a reply against `schema`: (object, "") on success, else (None, a readable list of errors).

    Every place the object may be is tried (see `json_candidates`), each also without trailing commas; pydantic's
    lax mode coerces what the schema allows ("3" for an int). Never raises: a reply that fits nowhere gives the
    errors of the most promising candidate (one that was JSON, else the first), for the repair round.
    """
    failures: list[ValidationError] = []
    for candidate in json_candidates(text):
        for variant in dict.fromkeys((candidate, without_trailing_commas(candidate))):
            try:
                return schema.model_validate_json(variant), ""
            except ValidationError as exc:
                failures.append(exc)
    if not failures:  # an empty reply
        return None, "- (root): the reply is empty; expected one JSON object"
    return None, format_errors(_most_promising(failures))


def json_candidates(text: str) -> list[str]:
    """Where the JSON object of a reply may be, most likely first: the reply itself, each fenced block, then each
    top-level {...} span (prose before, between or after is skipped). Duplicates are dropped."""
    found: dict[str, None] = {}
    fenced = (match.group("body") for match in _ANY_FENCE.finditer(text))
    for candidate in itertools.chain((strip_fences(text),), fenced, _objects(text)):
        candidate = candidate.strip()
        if candidate:
            found.setdefault(candidate)
        if len(found) >= _MAX_CANDIDATES:
            break
    return list(found)


def _objects(text: str) -> Iterator[str]:
    """Each top-level balanced {...} span of `text`, braces inside JSON strings ignored. A scan, not a parse, so a
    deeply nested or cut-off reply costs one pass and cannot exhaust the stack."""
    depth, start, in_string, escaped = 0, -1, False, False
    for index, char in enumerate(text):
        if in_string:
            in_string, escaped = _string_goes_on(char, escaped)
        elif char == '"':
            in_string = depth > 0  # quotes in the prose around an object open no string
        elif char == "{":
            start = index if depth == 0 else start
            depth += 1
        elif char == "}" and depth > 0:
            depth -= 1
            if depth == 0:
                yield text[start : index + 1]


def without_trailing_commas(text: str) -> str:
    """`text` without the commas that directly precede a closing } or ] (outside strings): JSON forbids them, and
    models trained on JavaScript and Python write them."""
    out: list[str] = []
    in_string, escaped = False, False
    for index, char in enumerate(text):
        if in_string:
            in_string, escaped = _string_goes_on(char, escaped)
        elif char == '"':
            in_string = True
        elif char == "," and _next_visible(text, index + 1) in ("}", "]"):
            continue
        out.append(char)
    return "".join(out)


def _string_goes_on(char: str, escaped: bool) -> tuple[bool, bool]:
    """Inside a JSON string: (still inside after `char`, whether the next character is escaped)."""
    if escaped:
        return True, False
    return char != '"', char == "\\"


def _next_visible(text: str, index: int) -> str:
    """The first character at or after `index` that is not whitespace ("" at the end)."""
    while index < len(text) and text[index].isspace():
        index += 1
    return text[index : index + 1]


def _most_promising(failures: list[ValidationError]) -> ValidationError:
    """The first failure of a candidate that was valid JSON (its errors are about the schema), else the first."""
    for exc in failures:
        if all(error["type"] != "json_invalid" for error in exc.errors()):
            return exc
    return failures[0]


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
