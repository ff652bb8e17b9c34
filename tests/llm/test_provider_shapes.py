"""Each provider's real response shape, replayed from a hand-written vcrpy cassette through LiteLLM's own
provider code, must come out as the right text, usage (cached reads and cache writes included) and cost.

The cassettes in tests/cassettes/ follow the providers' API references; they were never recorded, hold no key,
and replay with record_mode "none", so a request they do not cover fails instead of reaching the network.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import vcr
import yaml

from aetherflow.config.loader import load_settings
from aetherflow.config.models import Price
from aetherflow.llm._litellm import import_litellm
from aetherflow.llm.pricing import cost_usd
from aetherflow.llm.redact import Redactor
from aetherflow.llm.usage import usage_from_litellm

CASSETTES = Path(__file__).resolve().parent.parent / "cassettes"
SECRET_HEADERS = ["authorization", "x-api-key", "x-goog-api-key"]
REPLAY = vcr.VCR(
    cassette_library_dir=str(CASSETTES),
    record_mode="none",
    match_on=["method", "host", "path"],
    filter_headers=SECRET_HEADERS,
    filter_query_parameters=["key"],
)
TEST_KEY = "test-key"


@dataclass(frozen=True)
class Shape:
    """One cassette and what LiteLLM plus our normalisation must read from it."""

    cassette: str
    model: str
    stream: bool
    text: str
    prompt_tokens: int
    completion_tokens: int
    cached_read_tokens: int
    cache_write_tokens: int
    cost_usd: float


# Costs are worked out by hand from defaults.toml prices (USD per 1M tokens), not by the code under test.
SHAPES = [
    # 14 uncached * 3.00 + 2400 read * 0.30 + 1200 written * 3.75 + 85 out * 15.00
    Shape("anthropic_messages", "anthropic/claude-sonnet-4-5", False,
          "auth.py checks session tokens and refreshes them when they expire.", 3614, 85, 2400, 1200, 6537e-6),
    # 9 uncached * 3.00 + 1800 read * 0.30 + 42 out * 15.00
    Shape("anthropic_messages_stream", "anthropic/claude-sonnet-4-5", True,
          "Hello from Claude!", 1809, 42, 1800, 0, 1197e-6),
    # 176 missed * 0.28 + 1024 hit * 0.028 + 60 out * 0.42
    Shape("deepseek_chat", "deepseek/deepseek-chat", False,
          "def add(a, b):\n    return a + b", 1200, 60, 1024, 0, 103.152e-6),
    # 128 missed * 0.28 + 512 hit * 0.028 + 3 out * 0.42
    Shape("deepseek_chat_stream", "deepseek/deepseek-chat", True, "Hi there!", 640, 3, 512, 0, 51.436e-6),
    # 52 uncached * 0.30 + 2048 cached * 0.075 + (30 candidates + 120 thoughts) out * 2.50
    Shape("gemini_generate", "gemini/gemini-2.5-flash", False,
          "The log shows three timeouts against the payments service.", 2100, 150, 2048, 0, 544.2e-6),
    # 12 in * 0.30 + (7 candidates + 40 thoughts) out * 2.50
    Shape("gemini_stream", "gemini/gemini-2.5-flash", True, "Blue, like the sky.", 12, 47, 0, 0, 121.1e-6),
    # 45 in * 0.59 + 12 out * 0.79
    Shape("groq_chat", "groq/llama-3.3-70b-versatile", False,
          "1. Write-through LRU. 2. Write-back with a log.", 45, 12, 0, 0, 36.03e-6),
    # 30 in * 0.30 + 25 out * 0.90
    Shape("mistral_codestral", "mistral/codestral-latest", False, "bar = compute(bar)", 30, 25, 0, 0, 31.5e-6),
    # 18 in * 0.10 + 7 out * 0.30
    Shape("mistral_small", "mistral/mistral-small-latest", False, '{"valid": true}', 18, 7, 0, 0, 3.9e-6),
]


@pytest.fixture(scope="module")
def litellm() -> ModuleType:
    return import_litellm()


async def replay(litellm: ModuleType, model: str, stream: bool) -> tuple[str, Any]:
    """Call `model` as the gateway does; return the text and LiteLLM's usage object."""
    options: dict[str, Any] = {"stream": True, "stream_options": {"include_usage": True}} if stream else {}
    response = await litellm.acompletion(
        model=model,
        api_key=TEST_KEY,
        messages=[{"role": "user", "content": "hello"}],
        max_retries=0,
        timeout=10,
        **options,
    )
    if not stream:
        return response.choices[0].message.content, response.usage
    chunks = [chunk async for chunk in response]
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    usages = [chunk.usage for chunk in chunks if getattr(chunk, "usage", None)]
    assert usages, "the stream carried no usage"
    return text, usages[-1]


def catalogue_price(model_id: str) -> Price:
    """The price the shipped default catalogue gives the model with this LiteLLM id."""
    settings = load_settings(repo_root=None, environ={})
    [price] = [m.price for m in settings.models.values() if m.model == model_id]
    assert price is not None, f"defaults.toml gives {model_id} no price"
    return price


@pytest.mark.parametrize("shape", SHAPES, ids=[s.cassette for s in SHAPES])
async def test_provider_response_reads_text_usage_and_cost(litellm: ModuleType, shape: Shape) -> None:
    with REPLAY.use_cassette(f"{shape.cassette}.yaml") as cassette:
        text, raw_usage = await replay(litellm, shape.model, shape.stream)

    assert cassette.all_played
    assert text == shape.text
    usage = usage_from_litellm(raw_usage)
    assert (usage.prompt_tokens, usage.completion_tokens) == (shape.prompt_tokens, shape.completion_tokens)
    assert (usage.cached_read_tokens, usage.cache_write_tokens) == (shape.cached_read_tokens, shape.cache_write_tokens)
    assert cost_usd(catalogue_price(shape.model), usage) == pytest.approx(shape.cost_usd, rel=1e-9)


async def test_groq_timing_fields_reach_the_usage(litellm: ModuleType) -> None:
    with REPLAY.use_cassette("groq_chat.yaml"):
        _, raw_usage = await replay(litellm, "groq/llama-3.3-70b-versatile", stream=False)

    assert raw_usage.queue_time == pytest.approx(0.017564)
    assert raw_usage.total_time == pytest.approx(0.046453)


async def test_a_request_the_cassette_does_not_hold_never_reaches_the_network(litellm: ModuleType) -> None:
    with REPLAY.use_cassette("mistral_small.yaml") as cassette:
        with pytest.raises(litellm.InternalServerError, match="Can't play back this request"):
            await replay(litellm, "anthropic/claude-sonnet-4-5", stream=False)

    assert cassette.play_count == 0


@pytest.mark.parametrize("path", sorted(CASSETTES.glob("*.yaml")), ids=lambda p: p.name)
def test_cassettes_hold_no_credentials(path: Path) -> None:
    data = yaml.safe_load(path.read_text())

    for interaction in data["interactions"]:
        request = interaction["request"]
        assert not {name.lower() for name in request["headers"]} & set(SECRET_HEADERS)
        assert "key=" not in request["uri"]
    assert Redactor(key=b"cassette-check").scan(path.read_text()) == []


def test_every_cassette_is_exercised() -> None:
    assert {s.cassette for s in SHAPES} == {p.stem for p in CASSETTES.glob("*.yaml")}
