"""Token counting: offline encodings, per-message overhead, images, tool calls, the non-OpenAI safety factor."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from aetherflow.llm._litellm import bundled_tiktoken_dir
from aetherflow.llm.tokens import (
    ENCODING_URLS,
    IMAGE_TOKENS,
    NON_OPENAI_SAFETY_FACTOR,
    count_text,
    count_tokens,
    tokenizer_for,
)
from aetherflow.llm.types import ImagePart, Message, TextPart, ToolCall

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_litellm_bundles_both_encodings_under_tiktoken_cache_names() -> None:
    folder = bundled_tiktoken_dir()
    assert folder is not None
    for url in ENCODING_URLS.values():
        assert (folder / hashlib.sha1(url.encode()).hexdigest()).is_file(), url


def test_counts_offline_in_a_fresh_process_with_the_network_unreachable() -> None:
    """A fresh interpreter, with no TIKTOKEN_CACHE_DIR of its own and every HTTP(S) request sent to a dead
    proxy, must still load both encodings and count: they come from LiteLLM's bundled files."""
    env = {k: v for k, v in os.environ.items() if k not in ("TIKTOKEN_CACHE_DIR", "NO_PROXY", "no_proxy")}
    env.update(
        HF_HUB_OFFLINE="1",
        HTTP_PROXY="http://127.0.0.1:9",
        HTTPS_PROXY="http://127.0.0.1:9",
        http_proxy="http://127.0.0.1:9",
        https_proxy="http://127.0.0.1:9",
        PYTHONPATH=str(REPO_ROOT),
    )
    script = (
        "import json, sys\n"
        "from aetherflow.llm.tokens import count_text\n"
        "print(json.dumps([count_text('hello world', 'openai/gpt-4o'), count_text('hello world', 'deepseek/x'),"
        " 'litellm' in sys.modules]))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    gpt, other, litellm_imported = json.loads(done.stdout)
    assert gpt == 2  # "hello", " world"
    assert other == 3  # ceil(2 * 1.25)
    assert litellm_imported is False, "counting tokens must not pay LiteLLM's 2 s import"


@pytest.mark.parametrize(
    ("model_id", "encoding", "factor"),
    [
        ("openai/gpt-4o", "o200k_base", 1.0),
        ("gpt-4.1-mini", "o200k_base", 1.0),
        ("openrouter/openai/gpt-5", "o200k_base", 1.0),
        ("openai/gpt-4", "cl100k_base", 1.0),
        ("anthropic/claude-sonnet-4-5", "cl100k_base", NON_OPENAI_SAFETY_FACTOR),
        ("deepseek/deepseek-chat", "cl100k_base", NON_OPENAI_SAFETY_FACTOR),
        ("gemini/gemini-2.5-flash", "cl100k_base", NON_OPENAI_SAFETY_FACTOR),
        ("groq/llama-3.3-70b-versatile", "cl100k_base", NON_OPENAI_SAFETY_FACTOR),
        # An OpenAI-compatible server running some other model: not an OpenAI tokenizer.
        ("openai/my-local-llama", "cl100k_base", NON_OPENAI_SAFETY_FACTOR),
    ],
)
def test_tokenizer_choice(model_id: str, encoding: str, factor: float) -> None:
    assert tokenizer_for(model_id) == (encoding, factor)


def test_safety_factor_applies_to_non_openai_models() -> None:
    text = "def parse(path: str) -> dict[str, int]:\n    return {k: len(k) for k in path.split('/')}\n" * 50
    raw = count_text(text, "openai/gpt-4")  # cl100k_base, factor 1
    assert raw > 500
    assert count_text(text, "anthropic/claude-sonnet-4-5") == -(-raw * 5 // 4)  # ceil(raw * 1.25)


def test_messages_add_per_message_overhead() -> None:
    one = count_tokens([{"role": "user", "content": "hello world"}], "openai/gpt-4o")
    two = count_tokens([{"role": "user", "content": "hello world"}] * 2, "openai/gpt-4o")
    assert one > count_text("hello world", "openai/gpt-4o")
    assert two - one >= 4 + 2  # the second message's framing and text


def test_images_count_a_fixed_generous_amount() -> None:
    text_only = {"role": "user", "content": [{"type": "text", "text": "what is this?"}]}
    with_image = {
        "role": "user",
        "content": [
            {"type": "text", "text": "what is this?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64," + "A" * 100_000}},
        ],
    }
    difference = count_tokens([with_image], "openai/gpt-4o") - count_tokens([text_only], "openai/gpt-4o")
    assert difference == IMAGE_TOKENS  # the base64 payload itself is not counted as text


def test_tool_call_arguments_and_tool_specs_are_counted() -> None:
    arguments = json.dumps({"path": "src/app.py", "content": "print('hi')\n" * 100})
    bare = {"role": "assistant", "content": None}
    call = {"id": "c1", "type": "function", "function": {"name": "edit", "arguments": arguments}}
    nested = {**bare, "tool_calls": [call]}
    base = count_tokens([bare], "openai/gpt-4o")
    assert count_tokens([nested], "openai/gpt-4o") >= base + count_text(arguments, "openai/gpt-4o")
    spec = {"name": "edit", "description": "Edit a file", "parameters": {"type": "object", "properties": {}}}
    assert count_tokens([bare], "openai/gpt-4o", tools=[spec]) > base + 10


def test_message_models_count_like_their_dicts() -> None:
    message = Message(
        role="assistant",
        content=[TextPart(text="Let me look."), ImagePart(url="https://example.com/a.png")],
        tool_calls=[ToolCall(id="c1", name="read_file", arguments='{"path": "README.md"}')],
    )
    as_dict = {
        "role": "assistant",
        "content": [{"type": "text", "text": "Let me look."}, {"type": "image_url", "image_url": {"url": "x"}}],
        "tool_calls": [{"id": "c1", "function": {"name": "read_file", "arguments": '{"path": "README.md"}'}}],
    }
    assert count_tokens([message], "deepseek/deepseek-chat") == count_tokens([as_dict], "deepseek/deepseek-chat")


def test_special_token_text_is_counted_not_rejected() -> None:
    assert count_text("<|endoftext|>", "openai/gpt-4o") > 1
