from decimal import Decimal

import pytest

from orchestration.pricing import PRICES, cost_micro, price_of
from storage.errors import ConfigurationError
from workers.providers.base import Usage


def test_a_call_costs_its_input_and_output_at_list_price() -> None:
    # claude-haiku-4-5: $1 in, $5 out per million tokens = 1 and 5 micro-dollars per token
    assert cost_micro("claude-haiku-4-5", Usage(input_tokens=1000, output_tokens=200)) == 2000


def test_cache_writes_and_reads_are_billed_apart_from_input_and_never_twice() -> None:
    # sonnet: 3 in, 15 out, 3.75 cache write, 0.30 cache read (micro-dollars per token)
    usage = Usage(
        input_tokens=100,
        output_tokens=10,
        cache_creation_input_tokens=1000,
        cache_read_input_tokens=2000,
    )
    assert cost_micro("claude-sonnet-4-5", usage) == 300 + 150 + 3750 + 600


def test_fractional_costs_round_up_to_the_next_micro_dollar() -> None:
    # 3 cache-read tokens on haiku: 0.3 micro-dollars, billed as 1
    assert cost_micro("claude-haiku-4-5", Usage(cache_read_input_tokens=3)) == 1


def test_dated_model_ids_are_priced_as_their_family() -> None:
    assert price_of("claude-haiku-4-5-20251001") == PRICES["claude-haiku-4-5"]
    assert price_of("claude-opus-4-1-20250805") == PRICES["claude-opus-4-1"]


def test_the_longest_matching_family_wins() -> None:
    assert price_of("claude-opus-4-5-20251101").input == Decimal("5")


def test_an_unknown_model_is_refused_rather_than_priced_at_zero() -> None:
    with pytest.raises(ConfigurationError, match="no price for model 'gpt-5'"):
        price_of("gpt-5")
