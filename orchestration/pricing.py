"""What a model call costs, from its full usage, in integer micro-dollars.

A price in USD per million tokens is, conveniently, micro-dollars per token. Cache writes and
reads are billed apart from ``input_tokens`` (the API reports them apart), never twice; a cache
write costs 1.25 x the input price with the 5-minute TTL and 2 x with the 1-hour one, a cache
read 0.1 x, unless a price file says otherwise.

The built-in table holds Anthropic's list prices for the current Claude models. A TOML file
(``AGENTYARD_PRICES_FILE``) overrides or adds models::

    [models."claude-sonnet-4-5"]
    input = 3.0          # USD per million tokens
    output = 15.0
    cache_write_5m = 3.75   # optional: 1.25 x input
    cache_write_1h = 6.0    # optional: 2 x input
    cache_read = 0.30       # optional: 0.1 x input

A model with no price is an error when an agent using it is registered, never a silent zero.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from storage.errors import ConfigurationError
from workers.providers.base import Usage

CACHE_WRITE_5M = Decimal("1.25")
CACHE_WRITE_1H = Decimal("2")
CACHE_READ = Decimal("0.1")


@dataclass(frozen=True, slots=True)
class Price:
    """USD per million tokens (equally: micro-dollars per token)."""

    input: Decimal
    output: Decimal
    cache_write_5m: Decimal
    cache_write_1h: Decimal
    cache_read: Decimal

    @classmethod
    def list_price(cls, input_usd: str | Decimal, output_usd: str | Decimal) -> Price:
        """A price with the standard cache multipliers of the input price."""
        base = Decimal(input_usd)
        return cls(
            input=base,
            output=Decimal(output_usd),
            cache_write_5m=base * CACHE_WRITE_5M,
            cache_write_1h=base * CACHE_WRITE_1H,
            cache_read=base * CACHE_READ,
        )


# Anthropic's list prices, USD per million tokens (input, output).
DEFAULT_PRICES: Mapping[str, Price] = {
    "claude-opus-4-5": Price.list_price("5", "25"),
    "claude-opus-4-1": Price.list_price("15", "75"),
    "claude-opus-4": Price.list_price("15", "75"),
    "claude-sonnet-4-5": Price.list_price("3", "15"),
    "claude-sonnet-4": Price.list_price("3", "15"),
    "claude-3-7-sonnet": Price.list_price("3", "15"),
    "claude-haiku-4-5": Price.list_price("1", "5"),
    "claude-3-5-haiku": Price.list_price("0.80", "4"),
    "claude-3-haiku": Price.list_price("0.25", "1.25"),
}
# Offline models cost what claude-haiku-4-5 costs (unless a price file names "offline"), so that
# caps, budgets and the demo behave as in production.
OFFLINE = "offline"
OFFLINE_PRICE_OF = "claude-haiku-4-5"


class PriceTable:
    """Prices by model family; a dated id (``claude-haiku-4-5-20251001``) is priced as its
    family, the longest matching name winning."""

    def __init__(self, prices: Mapping[str, Price]) -> None:
        self._prices = dict(prices)
        self._families = sorted(self._prices, key=len, reverse=True)

    @classmethod
    def default(cls) -> PriceTable:
        return cls(DEFAULT_PRICES)

    @classmethod
    def load(cls, path: Path | None) -> PriceTable:
        """The built-in prices, with the models of the TOML file at ``path`` (if any) on top."""
        if path is None:
            return cls.default()
        try:
            document = tomllib.loads(Path(path).read_text())
        except OSError as exc:
            raise ConfigurationError(
                f"cannot read the price file {str(path)!r} ({exc.strerror}); fix "
                "AGENTYARD_PRICES_FILE or unset it to use the built-in prices"
            ) from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigurationError(
                f"the price file {str(path)!r} is not valid TOML: {exc}"
            ) from None
        models = document.get("models")
        if not isinstance(models, dict) or not models:
            raise ConfigurationError(
                f'the price file {str(path)!r} has no [models."<name>"] tables; see '
                "orchestration/pricing.py for the format"
            )
        prices = dict(DEFAULT_PRICES)
        for name, entry in models.items():
            prices[name] = _price_from_toml(str(path), name, entry)
        return cls(prices)

    @property
    def models(self) -> list[str]:
        return sorted(self._prices)

    def price_of(self, model: str) -> Price:
        if model.startswith(OFFLINE + ":") or model == OFFLINE:
            return self._prices.get(OFFLINE) or self.price_of(OFFLINE_PRICE_OF)
        for name in self._families:
            if model == name or model.startswith(name + "-"):
                return self._prices[name]
        raise ConfigurationError(
            f"no price for model {model!r}: agentyard refuses to run a model whose cost it "
            f"cannot count. Known models: {', '.join(self.models)}, or offline:*; add it to "
            "the price file (AGENTYARD_PRICES_FILE)"
        )

    def cost_micro(self, model: str, usage: Usage) -> int:
        """The cost of one call in micro-dollars, rounded up to the next one."""
        price = self.price_of(model)
        cache_1h = min(usage.cache_creation_1h_input_tokens, usage.cache_creation_input_tokens)
        cache_5m = usage.cache_creation_input_tokens - cache_1h
        total = (
            usage.input_tokens * price.input
            + usage.output_tokens * price.output
            + cache_5m * price.cache_write_5m
            + cache_1h * price.cache_write_1h
            + usage.cache_read_input_tokens * price.cache_read
        )
        return math.ceil(total)

    def worst_case_micro(self, model: str, input_tokens: int, max_tokens: int) -> int:
        """The most a call can cost: ``input_tokens`` (an upper bound) all written to the
        1-hour cache, the dearest way to send them, and ``max_tokens`` of output."""
        price = self.price_of(model)
        dearest_input = max(price.input, price.cache_write_5m, price.cache_write_1h)
        return math.ceil(input_tokens * dearest_input + max_tokens * price.output)


_FIELDS = ("input", "output", "cache_write_5m", "cache_write_1h", "cache_read")


def _price_from_toml(path: str, name: str, entry: Any) -> Price:
    if not isinstance(entry, dict):
        raise ConfigurationError(f"price file {path!r}: models.{name!r} must be a table")
    unknown = sorted(set(entry) - set(_FIELDS))
    if unknown:
        raise ConfigurationError(
            f"price file {path!r}: models.{name!r} has unknown field(s) {unknown}; "
            f"the fields are {list(_FIELDS)}"
        )
    values: dict[str, Decimal] = {}
    for field_name in _FIELDS:
        if field_name not in entry:
            continue
        raw = entry[field_name]
        try:
            value = Decimal(str(raw)) if not isinstance(raw, bool) else None
        except InvalidOperation:
            value = None
        if value is None or value < 0 or not value.is_finite():
            raise ConfigurationError(
                f"price file {path!r}: models.{name!r}.{field_name} = {raw!r} is not a price "
                "(USD per million tokens, zero or more)"
            )
        values[field_name] = value
    for required in ("input", "output"):
        if required not in values:
            raise ConfigurationError(f"price file {path!r}: models.{name!r} needs {required!r}")
    base = Price.list_price(values["input"], values["output"])
    return Price(
        input=base.input,
        output=base.output,
        cache_write_5m=values.get("cache_write_5m", base.cache_write_5m),
        cache_write_1h=values.get("cache_write_1h", base.cache_write_1h),
        cache_read=values.get("cache_read", base.cache_read),
    )


def micro_to_usd(micro: int) -> float:
    return micro / 1_000_000


def usd_to_micro(usd: float) -> int:
    return round(usd * 1_000_000)
