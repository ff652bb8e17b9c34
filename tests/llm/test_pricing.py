"""Prices from the catalogue and LiteLLM's bundled table, call costs with cached tokens, worst-case bounds."""

from __future__ import annotations

import pytest

from aetherflow.config import load_settings
from aetherflow.config.models import ModelConfig, Price
from aetherflow.llm.pricing import FREE, bundled_price, cost_usd, resolve_price, worst_case_usd
from aetherflow.llm.tokens import count_tokens
from aetherflow.llm.types import Usage


def test_every_default_catalogue_model_has_a_price() -> None:
    settings = load_settings(None, environ={})
    assert settings.models, "the defaults define a catalogue"
    for alias, model in settings.models.items():
        price = resolve_price(model)
        assert price is not None, alias
        assert price.input >= 0 and price.output >= 0
    assert resolve_price(settings.models["sonnet"]) == Price(input=3.0, output=15.0, cached_input=0.3, cache_write=3.75)
    assert resolve_price(settings.models["local"]).output == 0.0


@pytest.mark.parametrize(
    ("model_id", "expected_in", "expected_out"),
    [
        ("anthropic/claude-sonnet-4-5", 3.0, 15.0),
        ("deepseek/deepseek-chat", 0.28, 0.42),
        ("gemini/gemini-2.5-flash", 0.30, 2.50),
        ("mistral/codestral-latest", 0.30, 0.90),
    ],
)
def test_bundled_prices_match_the_published_ones(model_id: str, expected_in: float, expected_out: float) -> None:
    price = bundled_price(model_id)
    assert price is not None
    assert price.input == pytest.approx(expected_in)
    assert price.output == pytest.approx(expected_out)


def test_bundled_price_includes_cache_rates_per_million() -> None:
    price = resolve_price(ModelConfig(model="anthropic/claude-sonnet-4-5"))
    assert price is not None
    assert price.cached_input == pytest.approx(0.30)
    assert price.cache_write == pytest.approx(3.75)


def test_config_price_overrides_the_bundled_table() -> None:
    override = Price(input=1.0, output=2.0)
    assert resolve_price(ModelConfig(model="anthropic/claude-sonnet-4-5", price=override)) is override


def test_local_models_are_free_and_unknown_models_have_no_price() -> None:
    assert resolve_price(ModelConfig(model="local/smollm2", local=True)) == FREE
    assert resolve_price(ModelConfig(model="openai/my-private-model-xyz")) is None
    # The bundled table lacks Groq's Llama 3.3 70B (STACK.md); the defaults price it in the catalogue instead.
    assert resolve_price(ModelConfig(model="groq/llama-3.3-70b-versatile")) is None


def test_cost_prices_cached_reads_and_cache_writes_at_their_own_rates() -> None:
    price = Price(input=3.0, output=15.0, cached_input=0.3, cache_write=3.75)
    usage = Usage(prompt_tokens=10_000, completion_tokens=1_000, cached_read_tokens=6_000, cache_write_tokens=2_000)
    expected = (2_000 * 3.0 + 6_000 * 0.3 + 2_000 * 3.75 + 1_000 * 15.0) / 1_000_000
    assert cost_usd(price, usage) == pytest.approx(expected)
    assert cost_usd(price, usage) == pytest.approx(0.0303)


def test_cache_rates_default_to_the_input_rate() -> None:
    price = Price(input=0.3, output=0.9)
    usage = Usage(prompt_tokens=1_000_000, completion_tokens=0, cached_read_tokens=500_000, cache_write_tokens=1)
    assert cost_usd(price, usage) == pytest.approx(0.3)


def test_worst_case_uses_the_dearer_of_input_and_cache_write() -> None:
    price = Price(input=3.0, output=15.0, cached_input=0.3, cache_write=3.75)
    assert worst_case_usd(price, 1_000_000, 1_000_000) == pytest.approx(3.75 + 15.0)
    assert worst_case_usd(Price(input=0.28, output=0.42), 1_000, 0) == pytest.approx(0.00028)


def test_worst_case_bounds_a_realistic_call() -> None:
    price = Price(input=3.0, output=15.0, cached_input=0.3, cache_write=3.75)
    messages = [
        {"role": "system", "content": "You are a careful senior engineer. Answer with a unified diff only."},
        {"role": "user", "content": "Refactor this to use dataclasses:\n" + "def f(x):\n    return x * 2\n" * 200},
    ]
    estimated_prompt = count_tokens(messages, "anthropic/claude-sonnet-4-5")
    # What the provider might report: the prompt a little above tiktoken's raw count, half of it a cache write.
    actual_prompt = int(estimated_prompt / 1.25 * 1.1)
    usage = Usage(prompt_tokens=actual_prompt, completion_tokens=3_000, cache_write_tokens=actual_prompt // 2)
    assert worst_case_usd(price, estimated_prompt, 4_096) >= cost_usd(price, usage)
