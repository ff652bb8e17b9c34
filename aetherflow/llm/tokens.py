"""Token counting for budget reservations, offline, with tiktoken.

tiktoken downloads its encodings on first use, which fails offline. LiteLLM ships cl100k_base and o200k_base under
the file names tiktoken's cache uses (a sha1 of the download URL), so pointing `TIKTOKEN_CACHE_DIR` at that folder
(`_litellm.prepare_environment`) makes tiktoken read them from disk. Before asking tiktoken for an encoding we check
that its cache file exists, so a missing file is a clear error instead of a network request.

The count is an estimate meant to bound the real one from above: the budget reserves a call's worst case from it.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel

from aetherflow.errors import AetherError

if TYPE_CHECKING:
    from tiktoken import Encoding

EncodingName = Literal["o200k_base", "cl100k_base"]

# Where tiktoken would download each encoding from; its cache file is named by the sha1 of this URL.
ENCODING_URLS: dict[EncodingName, str] = {
    "o200k_base": "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken",
    "cl100k_base": "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken",
}

# Claude, Gemini, Llama, Mistral and DeepSeek use their own tokenizers, which we cannot run offline, so their text is
# counted with cl100k_base and scaled by this factor: the budget reserves a call's worst case from the count, and
# that reservation must be an upper bound. The Claude tokenizer LiteLLM bundles gives 1.04-1.06x cl100k_base on
# Python and English; newer tokenizers are not published and vocabularies smaller than cl100k's (Llama 2, Mistral's
# older ones) give more tokens, hence the margin.
NON_OPENAI_SAFETY_FACTOR = 1.25
# OpenAI's chat format wraps each message in a few tokens (role, separators); 4 is a little above the documented 3.
TOKENS_PER_MESSAGE = 4
TOKENS_PER_NAME = 1
# Every reply is primed with `<|start|>assistant<|message|>`.
REPLY_PRIMING_TOKENS = 3
# Each tool call costs its id, type and name framing on top of its arguments.
TOKENS_PER_TOOL_CALL = 8
TOKENS_PER_TOOL_SPEC = 10
# Providers bill an image by its size (OpenAI up to ~1,100 tokens at high detail, Anthropic ~1,600 for a
# 1.15-megapixel image, Gemini 258); we cannot see the size cheaply, so every image counts the largest of these.
IMAGE_TOKENS = 1_600

# Provider prefixes under which a model name is an OpenAI model (so tiktoken's own mapping is exact).
_OPENAI_PROVIDERS = ("openai", "azure", "text-completion-openai", "chatgpt")


class TokenizerUnavailableError(AetherError):
    """tiktoken's encoding file is not on disk, and fetching it would need the network."""


@lru_cache(maxsize=None)
def encoding_for(name: EncodingName) -> Encoding:
    """The tiktoken encoding `name`, loaded once from the offline cache folder and kept for the process."""
    from aetherflow.llm._litellm import prepare_environment

    prepare_environment()
    folder = os.environ.get("TIKTOKEN_CACHE_DIR", "")
    cache_file = Path(folder) / hashlib.sha1(ENCODING_URLS[name].encode()).hexdigest()
    if not folder or not cache_file.is_file():
        raise TokenizerUnavailableError(
            f"The tiktoken encoding {name} is not in TIKTOKEN_CACHE_DIR ({folder or 'unset'}), and loading it "
            "would need the network.",
            "Unset TIKTOKEN_CACHE_DIR so AetherFlow uses the copy bundled with LiteLLM, or reinstall litellm "
            "(`pip install --force-reinstall 'litellm>=1.83,<1.107'`).",
        )
    import tiktoken

    return tiktoken.get_encoding(name)


@lru_cache(maxsize=512)
def tokenizer_for(model_id: str) -> tuple[EncodingName, float]:
    """The encoding to count with for a LiteLLM model id, and the factor to scale the count by.

    OpenAI models are counted with their own encoding (exact, factor 1). Every other model is counted with
    cl100k_base and scaled by NON_OPENAI_SAFETY_FACTOR.
    """
    from tiktoken.model import encoding_name_for_model

    provider, _, name = model_id.rpartition("/")
    first_segment = provider.split("/", 1)[0] if provider else ""
    if first_segment in ("", *_OPENAI_PROVIDERS) or provider.endswith("openai"):
        try:
            encoding = encoding_name_for_model(name)
        except KeyError:
            encoding = ""
        if encoding.startswith("o200k"):
            return "o200k_base", 1.0
        if encoding == "cl100k_base":
            return "cl100k_base", 1.0
    return "cl100k_base", NON_OPENAI_SAFETY_FACTOR


def count_text(text: str, model_id: str) -> int:
    """Tokens of a bare string for `model_id`, safety factor applied."""
    encoding_name, factor = tokenizer_for(model_id)
    return math.ceil(len(encoding_for(encoding_name).encode_ordinary(text)) * factor)


def count_tokens(
    messages: Sequence[Mapping[str, Any] | BaseModel],
    model_id: str,
    tools: Sequence[Mapping[str, Any] | BaseModel] | None = None,
) -> int:
    """An upper-bound estimate of the prompt tokens of a chat request to `model_id`.

    `messages` are OpenAI-style dicts (or `types.Message` models). Text, names, tool-call names and arguments and
    tool specs are counted with tiktoken; each message adds its framing; each image adds IMAGE_TOKENS. For models
    that tiktoken does not tokenize exactly the text count is scaled by NON_OPENAI_SAFETY_FACTOR.
    """
    encoding_name, factor = tokenizer_for(model_id)
    encode = encoding_for(encoding_name).encode_ordinary
    text_tokens = REPLY_PRIMING_TOKENS
    images = 0
    for raw in messages:
        message = _as_dict(raw)
        pieces, message_images = _message_pieces(message)
        images += message_images
        text_tokens += TOKENS_PER_MESSAGE + sum(len(encode(piece)) for piece in pieces)
        text_tokens += TOKENS_PER_NAME if message.get("name") else 0
        text_tokens += TOKENS_PER_TOOL_CALL * len(message.get("tool_calls") or ())
    for tool in tools or ():
        text_tokens += TOKENS_PER_TOOL_SPEC + len(encode(json.dumps(_as_dict(tool), separators=(",", ":"))))
    return math.ceil(text_tokens * factor) + images * IMAGE_TOKENS


def _as_dict(item: Mapping[str, Any] | BaseModel) -> Mapping[str, Any]:
    return item.model_dump(exclude_none=True) if isinstance(item, BaseModel) else item


def _message_pieces(message: Mapping[str, Any]) -> tuple[list[str], int]:
    """The strings of a message that the model reads, and how many images it carries."""
    pieces = [str(message.get("role", "")), str(message.get("name") or "")]
    images = 0
    content = message.get("content")
    if isinstance(content, str):
        pieces.append(content)
    elif isinstance(content, list):
        for part in content:
            kind = part.get("type") if isinstance(part, Mapping) else None
            if kind == "text":
                pieces.append(str(part.get("text", "")))
            elif kind == "image_url":
                images += 1
            else:
                # Audio, files and unknown parts: their serialized form is a generous stand-in.
                pieces.append(json.dumps(part, default=str))
    for call in message.get("tool_calls") or ():
        pieces.extend(_tool_call_pieces(call))
    if message.get("tool_call_id"):
        pieces.append(str(message["tool_call_id"]))
    return pieces, images


def _tool_call_pieces(call: Mapping[str, Any]) -> list[str]:
    """Name and arguments of a tool call, in either OpenAI's nested form or `types.ToolCall`'s flat one."""
    function = call.get("function")
    source = function if isinstance(function, Mapping) else call
    arguments = source.get("arguments", "")
    if not isinstance(arguments, str):
        arguments = json.dumps(arguments)
    return [str(source.get("name", "")), arguments]
