"""What an attempt may cost and what it did cost: the budget reservation before sending, the settlement after.

Before every attempt the worst case is reserved (prompt tokens counted offline plus max_tokens at the output
price), so parallel calls, retries and fallbacks can never pass the limit together. Afterwards the reservation
is replaced by the real cost of the reported usage, or released when the attempt failed.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from aetherflow.config.models import ModelConfig, Price, Settings
from aetherflow.errors import UnknownPriceError
from aetherflow.llm.chain import DEFAULT_MAX_TOKENS
from aetherflow.llm.pricing import cost_usd, resolve_price, worst_case_usd
from aetherflow.llm.types import ToolCall, Usage

if TYPE_CHECKING:
    from aetherflow.llm.budget import Budget, Reservation
    from aetherflow.llm.model_call import Prepared


class Spending:
    """Prices, token counts and the budget, for one gateway."""

    def __init__(self, settings: Settings, budget: Budget) -> None:
        self._settings = settings
        self._budget = budget
        self._prices: dict[str, Price | None] = {}

    def price(self, alias: str, model: ModelConfig) -> Price | None:
        """The model's price (config, else LiteLLM's table; resolved once per alias)."""
        if alias not in self._prices:
            self._prices[alias] = resolve_price(model)
        return self._prices[alias]

    def prompt_tokens(self, prepared: Prepared) -> int:
        """An upper-bound count of the prompt: messages, tool specs and the response schema."""
        if prepared.prompt_tokens is None:
            from aetherflow.llm.tokens import count_text, count_tokens

            request = prepared.request
            count = count_tokens(request.messages, request.model.model, tools=request.tools)
            if request.response_format is not None:
                count += count_text(json.dumps(request.response_format), request.model.model)
            # Kept on the Prepared: every attempt of the round reuses it.
            prepared.prompt_tokens = count
        return prepared.prompt_tokens

    def reserve(self, prepared: Prepared) -> Reservation:
        """Hold the attempt's worst case; BudgetExceededError (before any byte is sent) when it does not fit.

        Without a limit nothing needs bounding, so the tokens are not counted and 0 is held; the settlement still
        records what was spent. With a limit, a model of unknown price is refused: its cost cannot be bounded.
        """
        what = f"a call to {prepared.alias} ({prepared.model.model})"
        if self._budget.limit_usd is None:
            return self._budget.reserve(0.0, what)
        price = self.price(prepared.alias, prepared.model)
        if price is None:
            raise UnknownPriceError(
                f"Model '{prepared.alias}' ({prepared.model.model}) has no known price, so the budget cannot "
                "bound what a call to it costs.",
                f"Add [models.{prepared.alias}.price] with input and output (USD per 1M tokens) to aetherflow.toml, "
                "or remove budget.per_run_usd / per_day_usd.",
            )
        max_tokens = prepared.request.max_tokens or DEFAULT_MAX_TOKENS
        return self._budget.reserve(worst_case_usd(price, self.prompt_tokens(prepared), max_tokens), what)

    def settle(self, prepared: Prepared, reservation: Reservation, usage: Usage) -> float:
        """Replace the reservation by the cost of `usage`; returns that cost (0 when the price is unknown)."""
        price = self.price(prepared.alias, prepared.model)
        cost = cost_usd(price, usage) if price is not None else 0.0
        self._budget.settle(reservation, cost)
        return cost

    def release(self, reservation: Reservation) -> None:
        """A failed attempt reported no usage: give its reservation back."""
        self._budget.release(reservation)

    def estimate_usage(self, prepared: Prepared, text: str, tool_calls: list[ToolCall]) -> Usage:
        """Usage for a provider that reported none: counted here, so the spend is not recorded as zero."""
        from aetherflow.llm.tokens import count_text

        produced = text + "".join(call.name + call.arguments for call in tool_calls)
        return Usage(
            prompt_tokens=self.prompt_tokens(prepared),
            completion_tokens=count_text(produced, prepared.model.model) if produced else 0,
        )
