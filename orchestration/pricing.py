"""What a model call costs, from its full usage, in integer micro-dollars.

A price in USD per million tokens is, conveniently, micro-dollars per token. Cache writes and
reads are billed apart from ``input_tokens`` (the API reports them apart), never twice. Most
models bill a 5-minute cache write at 1.25 x the input price, a 1-hour one at 2 x and a cache
read at 0.1 x; the table says so model by model, since some do not. A model may also bill a long
prompt (over so many tokens, cache included) at higher prices, for every token of the request.

The built-in table holds Anthropic's list prices for every model the pinned SDK names, each with
the page it was read from; a model the SDK names without a published price is listed in
``UNPRICED``, with the reason. A TOML file (``AGENTYARD_PRICES_FILE``) overrides or adds models::

    [models."claude-sonnet-4-5"]
    input = 3.0             # USD per million tokens
    output = 15.0
    cache_write_5m = 3.75   # optional: 1.25 x input
    cache_write_1h = 6.0    # optional: 2 x input
    cache_read = 0.30       # optional: 0.1 x input
    long_prompt_over = 200000          # optional: prompts over this many tokens...
    [models."claude-sonnet-4-5".long_prompt]
    input = 6.0                        # ...are billed at these prices, every token of them
    output = 22.5

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
    """USD per million tokens (equally: micro-dollars per token). ``long_prompt``: the prices of
    a request whose prompt (input and cache tokens) is over ``long_prompt_over`` tokens."""

    input: Decimal
    output: Decimal
    cache_write_5m: Decimal
    cache_write_1h: Decimal
    cache_read: Decimal
    long_prompt_over: int | None = None
    long_prompt: Price | None = None

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

    @classmethod
    def of(cls, input: str, output: str, write_5m: str, write_1h: str, read: str) -> Price:
        """A price as a pricing page lists it: input, output, cache writes (5 m, 1 h), reads."""
        rates = (Decimal(input), Decimal(output), Decimal(write_5m), Decimal(write_1h))
        return cls(*rates, cache_read=Decimal(read))

    def over(self, tokens: int, long_prompt: Price) -> Price:
        """This price, with ``long_prompt`` for requests whose prompt is over ``tokens``."""
        return Price(
            self.input,
            self.output,
            self.cache_write_5m,
            self.cache_write_1h,
            self.cache_read,
            long_prompt_over=tokens,
            long_prompt=long_prompt,
        )

    def for_prompt(self, prompt_tokens: int) -> Price:
        """The prices a request with a prompt of ``prompt_tokens`` tokens is billed at."""
        over = self.long_prompt_over
        if self.long_prompt is not None and over is not None and prompt_tokens > over:
            return self.long_prompt
        return self


# Anthropic's list prices, USD per million tokens: input, output, 5-minute and 1-hour cache
# writes, cache reads. Each entry names the page it was read from (and when, for a page that
# changes); tests/unit/test_pricing.py fails when the SDK names a model that is in neither this
# table nor UNPRICED.
DEFAULT_PRICES: Mapping[str, Price] = {
    # The release notes of 2026-11-09 give $8 / $40 for both; their cache rates are not published
    # yet, so the standard multipliers stand in: over Fable 5.1's own cache-read rate (0.025 x),
    # so a cost is never counted short. (platform.claude.com/docs/en/release-notes/overview)
    "claude-fable-5-2": Price.list_price("8", "40"),
    "claude-mythos-5-2": Price.list_price("8", "40"),
    # platform.claude.com/docs/en/models/haiku-5-5/overview: a prompt over 100 000 tokens pays
    # the higher prices.
    "claude-haiku-5-5": Price.of("0.10", "0.50", "0.125", "0.20", "0.01").over(
        100_000, Price.of("0.50", "2.50", "0.625", "1", "0.05")
    ),
    # platform.claude.com/docs/en/models/sonnet-5-5/overview, October 2026 (cache reads at 0.05 x
    # since 2026-10-07)
    "claude-sonnet-5-5": Price.of("2", "10", "2.50", "4", "0.10"),
    # platform.claude.com/docs/en/about-claude/pricing, September 2026 (cache reads at 0.025 x)
    "claude-fable-5-1": Price.of("10", "50", "12.50", "20", "0.25"),
    "claude-mythos-5-1": Price.of("10", "50", "12.50", "20", "0.25"),
    # platform.claude.com/docs/en/about-claude/pricing, late September 2026 (cache reads at 0.05 x)
    "claude-opus-5-5": Price.of("4", "20", "5", "8", "0.20"),
    # platform.claude.com/docs/en/about-claude/pricing, September 2026 (the $2 / $10 launch price
    # became the standard price)
    "claude-sonnet-5": Price.of("2", "10", "2.50", "4", "0.20"),
    # platform.claude.com/docs/en/about-claude/pricing, September 2026; Mythos 5 also on
    # platform.claude.com/docs/en/models/mythos-5/overview
    "claude-fable-5": Price.of("10", "50", "12.50", "20", "1"),
    "claude-mythos-5": Price.of("10", "50", "12.50", "20", "1"),
    # platform.claude.com/docs/en/about-claude/pricing, September 2026 (standard speed; the 1M
    # context at standard prices)
    "claude-opus-5": Price.of("5", "25", "6.25", "10", "0.50"),
    "claude-opus-4-8": Price.of("5", "25", "6.25", "10", "0.50"),
    "claude-opus-4-7": Price.of("5", "25", "6.25", "10", "0.50"),
    "claude-opus-4-6": Price.of("5", "25", "6.25", "10", "0.50"),
    "claude-sonnet-4-6": Price.of("3", "15", "3.75", "6", "0.30"),
    "claude-opus-4-5": Price.of("5", "25", "6.25", "10", "0.50"),
    "claude-haiku-4-5": Price.of("1", "5", "1.25", "2", "0.10"),
    "claude-opus-4-1": Price.of("15", "75", "18.75", "30", "1.50"),
    "claude-opus-4": Price.of("15", "75", "18.75", "30", "1.50"),
    # platform.claude.com/docs/en/about-claude/pricing, the late-2025 page: with the 1M context, a
    # request over 200 000 input tokens is billed at $6 / $22.50, every token of it, the cache
    # multipliers on top.
    "claude-sonnet-4-5": Price.of("3", "15", "3.75", "6", "0.30").over(
        200_000, Price.of("6", "22.50", "7.50", "12", "0.60")
    ),
    "claude-sonnet-4": Price.of("3", "15", "3.75", "6", "0.30").over(
        200_000, Price.of("6", "22.50", "7.50", "12", "0.60")
    ),
    # platform.claude.com/docs/en/about-claude/pricing, April 2026 (gone from the September table)
    "claude-3-7-sonnet": Price.of("3", "15", "3.75", "6", "0.30"),
    "claude-3-5-haiku": Price.of("0.80", "4", "1", "1.60", "0.08"),
    "claude-3-haiku": Price.of("0.25", "1.25", "0.30", "0.50", "0.03"),
}
# Models the SDK names that Anthropic publishes no price for: an agent on one is refused until a
# price file gives the price your agreement says.
UNPRICED: Mapping[str, str] = {
    "claude-mythos-preview": "an invitation-only research preview (Project Glasswing) with no "
    "published price (platform.claude.com/docs/en/about-claude/models/overview)",
}
# Offline models cost what claude-haiku-4-5 costs (unless a price file names "offline"), so that
# caps, budgets and the demo behave as in production.
OFFLINE = "offline"
OFFLINE_PRICE_OF = "claude-haiku-4-5"

_PRICE_FILE_EXAMPLE = (
    'e.g. a file with [models."{model}"] input = 3.0 and output = 15.0 (USD per million '
    "tokens; the format is in orchestration/pricing.py), named by AGENTYARD_PRICES_FILE"
)


class PriceTable:
    """Prices by model family. A dated id (``claude-haiku-4-5-20251001``) or a variant of a
    family's name is priced as the family, the longest matching name winning; a newer version
    (``claude-opus-4-9`` of ``claude-opus-4``) is not: it may be priced differently."""

    def __init__(self, prices: Mapping[str, Price], unpriced: Mapping[str, str] = UNPRICED) -> None:
        self._prices = dict(prices)
        self._unpriced = {m: why for m, why in unpriced.items() if m not in self._prices}
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
            if model == name or (model.startswith(name + "-") and _same_version(model, name)):
                return self._prices[name]
        why = self._unpriced.get(model)
        if why is not None:
            raise ConfigurationError(
                f"no price for model {model!r}: it is {why}. agentyard refuses to run a model "
                f"whose cost it cannot count; give it the price you pay, "
                + _PRICE_FILE_EXAMPLE.format(model=model)
            )
        raise ConfigurationError(
            f"no price for model {model!r}: agentyard refuses to run a model whose cost it "
            f"cannot count. Known models: {', '.join(self.models)}, or offline:*; add it to "
            "a price file, " + _PRICE_FILE_EXAMPLE.format(model=model)
        )

    def cost_micro(self, model: str, usage: Usage) -> int:
        """The cost of one call in micro-dollars, rounded up to the next one."""
        prompt = (
            usage.input_tokens + usage.cache_creation_input_tokens + usage.cache_read_input_tokens
        )
        price = self.price_of(model).for_prompt(prompt)
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
        1-hour cache, the dearest way to send them, and ``max_tokens`` of output, at the prices
        a prompt that long may be billed at."""
        price = self.price_of(model).for_prompt(input_tokens)
        dearest_input = max(price.input, price.cache_write_5m, price.cache_write_1h)
        return math.ceil(input_tokens * dearest_input + max_tokens * price.output)


def _same_version(model: str, family: str) -> bool:
    """Whether ``model``, which starts with ``family`` and a dash, is the family's own (a dated
    id, an alias, a variant) rather than a newer version of it (``-9``, ``-10-...``)."""
    first = model[len(family) + 1 :].split("-", 1)[0]
    return not (first.isdigit() and len(first) <= 2)


_FIELDS = ("input", "output", "cache_write_5m", "cache_write_1h", "cache_read")
_LONG = ("long_prompt_over", "long_prompt")


def _price_from_toml(path: str, name: str, entry: Any) -> Price:
    if not isinstance(entry, dict):
        raise ConfigurationError(f"price file {path!r}: models.{name!r} must be a table")
    unknown = sorted(set(entry) - set(_FIELDS) - set(_LONG))
    if unknown:
        raise ConfigurationError(
            f"price file {path!r}: models.{name!r} has unknown field(s) {unknown}; "
            f"the fields are {list(_FIELDS + _LONG)}"
        )
    price = _rates_from_toml(path, name, {k: v for k, v in entry.items() if k in _FIELDS})
    if ("long_prompt_over" in entry) != ("long_prompt" in entry):
        raise ConfigurationError(
            f"price file {path!r}: models.{name!r} needs both long_prompt_over (tokens) and a "
            "long_prompt table, or neither"
        )
    if "long_prompt" not in entry:
        return price
    over = entry["long_prompt_over"]
    if isinstance(over, bool) or not isinstance(over, int) or over <= 0:
        raise ConfigurationError(
            f"price file {path!r}: models.{name!r}.long_prompt_over = {over!r} is not a number "
            "of tokens"
        )
    long_prompt = entry["long_prompt"]
    if not isinstance(long_prompt, dict):
        raise ConfigurationError(
            f"price file {path!r}: models.{name!r}.long_prompt must be a table"
        )
    unknown = sorted(set(long_prompt) - set(_FIELDS))
    if unknown:
        raise ConfigurationError(
            f"price file {path!r}: models.{name!r}.long_prompt has unknown field(s) {unknown}; "
            f"the fields are {list(_FIELDS)}"
        )
    return price.over(over, _rates_from_toml(path, f"{name}.long_prompt", long_prompt))


def _rates_from_toml(path: str, name: str, entry: dict[str, Any]) -> Price:
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


# The largest budget or spend cap accepted, in USD: $1 000 000 000, 10**15 micro-dollars. The
# budget scripts add and compare amounts as Lua numbers (doubles), exact up to 2**53 micro-dollars
# (about $9 billion), so a cap at this maximum, with what is spent and held under it, stays exact;
# PostgreSQL's BIGINT and Redis's integers (2**63) have room to spare.
MAX_CAP_USD = 1_000_000_000


def micro_to_usd(micro: int) -> float:
    return micro / 1_000_000


def usd_to_micro(usd: float) -> int:
    return round(usd * 1_000_000)
