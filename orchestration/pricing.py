"""What a model call costs, from its full usage, in integer micro-dollars.

A price in USD per million tokens is, conveniently, micro-dollars per token. Cache writes and
reads are billed apart from ``input_tokens`` (the API reports them apart), never twice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal

from storage.errors import ConfigurationError
from workers.providers.base import Usage


@dataclass(frozen=True, slots=True)
class Price:
    """USD per million tokens."""

    input: Decimal
    output: Decimal
    cache_write: Decimal  # 5-minute cache writes: 1.25 x input
    cache_read: Decimal  # 0.1 x input

    @classmethod
    def from_input_output(cls, input_usd: str, output_usd: str) -> Price:
        base = Decimal(input_usd)
        return cls(
            input=base,
            output=Decimal(output_usd),
            cache_write=base * Decimal("1.25"),
            cache_read=base * Decimal("0.1"),
        )


# List prices (USD per million tokens). The cost-control work extends this with 1-hour cache
# writes and a file of overrides.
PRICES: dict[str, Price] = {
    "claude-opus-4-5": Price.from_input_output("5", "25"),
    "claude-opus-4-1": Price.from_input_output("15", "75"),
    "claude-opus-4": Price.from_input_output("15", "75"),
    "claude-sonnet-4-5": Price.from_input_output("3", "15"),
    "claude-sonnet-4": Price.from_input_output("3", "15"),
    "claude-haiku-4-5": Price.from_input_output("1", "5"),
    "claude-3-5-haiku": Price.from_input_output("0.80", "4"),
}
# Offline models are priced like claude-haiku-4-5, so budgets and the demo behave as in production.
OFFLINE_PRICE = PRICES["claude-haiku-4-5"]


def price_of(model: str) -> Price:
    """The price of ``model``; dated ids (``claude-haiku-4-5-20251001``) match their family."""
    if model.startswith("offline:"):
        return OFFLINE_PRICE
    for name in sorted(PRICES, key=len, reverse=True):
        if model == name or model.startswith(name + "-"):
            return PRICES[name]
    raise ConfigurationError(
        f"no price for model {model!r}: agentyard refuses to run a model whose cost it cannot "
        f"count. Known models: {', '.join(sorted(PRICES))}, or offline:*"
    )


def cost_micro(model: str, usage: Usage) -> int:
    """The cost of one call in micro-dollars, rounded up."""
    price = price_of(model)
    total = (
        usage.input_tokens * price.input
        + usage.output_tokens * price.output
        + usage.cache_creation_input_tokens * price.cache_write
        + usage.cache_read_input_tokens * price.cache_read
    )
    return math.ceil(total)


def micro_to_usd(micro: int) -> float:
    return micro / 1_000_000


def usd_to_micro(usd: float) -> int:
    return round(usd * 1_000_000)
