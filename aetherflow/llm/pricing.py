"""Model prices and call costs, in USD.

A price comes from the catalogue entry when it sets one (the user's word wins), otherwise from LiteLLM's bundled
price table (offline: `_litellm.import_litellm` keeps it from fetching one). Prices are USD per one million tokens,
the unit providers publish; LiteLLM stores USD per token, so its figures are scaled on the way in.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from aetherflow.config.models import ModelConfig, Price
from aetherflow.llm.types import Usage

PER_MILLION = 1_000_000.0
FREE = Price(input=0.0, output=0.0, cached_input=0.0, cache_write=0.0)


def resolve_price(model: ModelConfig) -> Price | None:
    """The price of `model`: its configured price, else LiteLLM's bundled one; local models are free.

    Returns None when neither source knows the model (the gateway then refuses it under a budget).
    """
    if model.price is not None:
        return model.price
    if model.local:
        return FREE
    return bundled_price(model.model)


@lru_cache(maxsize=256)
def bundled_price(model_id: str) -> Price | None:
    """LiteLLM's bundled price for a LiteLLM model id, per 1M tokens, or None when the table lacks it.

    Imports LiteLLM (about 2 s the first time), so it is only called when the catalogue sets no price.
    """
    from aetherflow.llm._litellm import import_litellm

    table: dict[str, dict[str, Any]] = import_litellm().model_cost
    for key in _candidate_keys(model_id):
        entry = table.get(key)
        if entry is not None:
            price = _price_from_entry(entry)
            if price is not None:
                return price
    return None


def _candidate_keys(model_id: str) -> list[str]:
    """Keys under which LiteLLM may list a model: the full id, then without its provider prefix.

    The table keys some models with their prefix ('deepseek/deepseek-chat') and others without it
    ('claude-sonnet-4-5'), so both spellings are tried.
    """
    keys = [model_id]
    if "/" in model_id:
        keys.append(model_id.split("/", 1)[1])
    return keys


def _price_from_entry(entry: dict[str, Any]) -> Price | None:
    input_cost = entry.get("input_cost_per_token")
    output_cost = entry.get("output_cost_per_token")
    if not isinstance(input_cost, int | float) or not isinstance(output_cost, int | float):
        return None
    return Price(
        input=_scaled(input_cost),
        output=_scaled(output_cost),
        cached_input=_cache_rate(entry.get("cache_read_input_token_cost"), input_cost),
        cache_write=_cache_rate(entry.get("cache_creation_input_token_cost"), input_cost),
    )


def _scaled(per_token: float) -> float:
    # Rounded so that 9e-07 per token reads as 0.9 per 1M, not 0.8999999999999999.
    return round(per_token * PER_MILLION, 9)


def _cache_rate(per_token: object, input_cost: float) -> float | None:
    """A cache rate from the table; a zero rate on a paid model is a gap in the table, so it means "not set"
    (the input rate then applies, which keeps cost estimates on the high side)."""
    if not isinstance(per_token, int | float) or (per_token == 0 and input_cost > 0):
        return None
    return _scaled(per_token)


def cost_usd(price: Price, usage: Usage) -> float:
    """The cost of one call.

    `usage.prompt_tokens` includes the cached-read and cache-write tokens, which are billed at their own rates
    (falling back to the input rate when the price does not set them).
    """
    cached = max(usage.cached_read_tokens, 0)
    written = max(usage.cache_write_tokens, 0)
    uncached = max(usage.prompt_tokens - cached - written, 0)
    cached_rate = price.input if price.cached_input is None else price.cached_input
    write_rate = price.input if price.cache_write is None else price.cache_write
    total = (
        uncached * price.input
        + cached * cached_rate
        + written * write_rate
        + max(usage.completion_tokens, 0) * price.output
    )
    return total / PER_MILLION


def worst_case_usd(price: Price, prompt_tokens: int, max_output_tokens: int) -> float:
    """An upper bound on a call's cost, for the budget reservation made before sending.

    Every prompt token is priced at the dearer of the input and cache-write rates (a cache write can cost more
    than plain input, as with Anthropic), and the reply is assumed to run to `max_output_tokens`.
    """
    prompt_rate = max(price.input, price.cache_write or 0.0)
    return (max(prompt_tokens, 0) * prompt_rate + max(max_output_tokens, 0) * price.output) / PER_MILLION
