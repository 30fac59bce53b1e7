"""Prices and the cost of a call, checked against figures worked out by hand."""

from decimal import Decimal
from pathlib import Path

import pytest

from orchestration.pricing import DEFAULT_PRICES, UNPRICED, Price, PriceTable
from storage.errors import ConfigurationError
from workers.providers.base import Usage

PRICES = PriceTable.default()


def test_a_call_costs_its_input_and_output_at_list_price() -> None:
    # claude-haiku-4-5: $1 in, $5 out per million tokens = 1 and 5 micro-dollars per token
    assert (
        PRICES.cost_micro("claude-haiku-4-5", Usage(input_tokens=1000, output_tokens=200)) == 2000
    )


def test_cache_writes_and_reads_are_billed_apart_from_input_and_never_twice() -> None:
    # sonnet 4.5: 3 in, 15 out, 3.75 per 5-minute cache write, 0.30 per cache read
    usage = Usage(
        input_tokens=100,
        output_tokens=10,
        cache_creation_input_tokens=1000,
        cache_read_input_tokens=2000,
    )
    assert PRICES.cost_micro("claude-sonnet-4-5", usage) == 300 + 150 + 3750 + 600


def test_one_hour_cache_writes_cost_twice_the_input_price_and_the_rest_are_five_minute_ones() -> (
    None
):
    # opus 4.5: $5 in; 400 of the 1000 written tokens used the 1-hour TTL (2 x 5 = 10 per token),
    # the other 600 the 5-minute one (1.25 x 5 = 6.25 per token)
    usage = Usage(
        input_tokens=10,
        output_tokens=20,
        cache_creation_input_tokens=1000,
        cache_creation_1h_input_tokens=400,
        cache_read_input_tokens=100,
    )
    assert PRICES.cost_micro("claude-opus-4-5", usage) == 50 + 500 + 3750 + 4000 + 50


def test_fractional_costs_round_up_to_the_next_micro_dollar() -> None:
    # 3 cache-read tokens on haiku: 0.3 micro-dollars, billed as 1
    assert PRICES.cost_micro("claude-haiku-4-5", Usage(cache_read_input_tokens=3)) == 1


def test_the_worst_case_of_a_call_is_its_input_bound_at_the_dearest_rate_and_all_its_output() -> (
    None
):
    # haiku: the dearest way to send a token is a 1-hour cache write (2 per token); 5 per output
    assert PRICES.worst_case_micro("claude-haiku-4-5", input_tokens=1000, max_tokens=100) == 2500


def test_dated_model_ids_are_priced_as_their_family_the_longest_name_winning() -> None:
    assert PRICES.price_of("claude-haiku-4-5-20251001") == DEFAULT_PRICES["claude-haiku-4-5"]
    assert PRICES.price_of("claude-opus-4-1-20250805") == DEFAULT_PRICES["claude-opus-4-1"]
    assert PRICES.price_of("claude-opus-4-5-20251101").input == Decimal("5")


def test_offline_models_cost_what_haiku_costs() -> None:
    assert PRICES.price_of("offline:echo") == DEFAULT_PRICES["claude-haiku-4-5"]


def test_an_unknown_model_is_refused_rather_than_priced_at_zero() -> None:
    with pytest.raises(ConfigurationError, match="no price for model 'gpt-5'"):
        PRICES.price_of("gpt-5")


def test_a_price_file_overrides_a_model_and_adds_one(tmp_path: Path) -> None:
    path = tmp_path / "prices.toml"
    path.write_text(
        '[models."claude-haiku-4-5"]\ninput = 2\noutput = "8"\ncache_read = 0.5\n\n'
        '[models."my-finetune"]\ninput = 0.5\noutput = 1.5\ncache_write_1h = 0.75\n'
    )
    table = PriceTable.load(path)

    assert table.price_of("claude-haiku-4-5") == Price(
        input=Decimal(2),
        output=Decimal(8),
        cache_write_5m=Decimal("2.5"),
        cache_write_1h=Decimal(4),
        cache_read=Decimal("0.5"),
    )
    assert table.price_of("my-finetune-v2").cache_write_1h == Decimal("0.75")
    assert table.price_of("claude-sonnet-4-5") == DEFAULT_PRICES["claude-sonnet-4-5"]


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ('[models."m"]\noutput = 1\n', "needs 'input'"),
        ('[models."m"]\ninput = -1\noutput = 1\n', "is not a price"),
        ('[models."m"]\ninput = "cheap"\noutput = 1\n', "is not a price"),
        ('[models."m"]\ninput = 1\noutput = 1\ncache_write = 2\n', "unknown field"),
        ("[prices]\nx = 1\n", "no \\[models"),
        ("models = [", "not valid TOML"),
    ],
)
def test_a_bad_price_file_is_refused_with_what_is_wrong(
    tmp_path: Path, text: str, complaint: str
) -> None:
    path = tmp_path / "prices.toml"
    path.write_text(text)
    with pytest.raises(ConfigurationError, match=complaint):
        PriceTable.load(path)


def test_a_missing_price_file_says_which_setting_to_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="AGENTYARD_PRICES_FILE"):
        PriceTable.load(tmp_path / "nowhere.toml")


def _models_the_sdk_names() -> list[str]:
    import typing

    import anthropic.types

    literal, *_ = typing.get_args(anthropic.types.Model)
    return list(typing.get_args(literal))


def test_every_model_the_sdk_names_is_priced_or_listed_as_having_no_published_price() -> None:
    # A new SDK naming a model the table does not know fails here: price it (with its source) in
    # DEFAULT_PRICES, or list it in UNPRICED with the reason.
    models = _models_the_sdk_names()
    assert len(models) >= 20
    unknown = []
    for model in models:
        try:
            PRICES.price_of(model)
        except ConfigurationError:
            if model not in UNPRICED:
                unknown.append(model)
    assert unknown == []


def test_a_model_with_no_published_price_is_refused_with_how_to_give_it_one() -> None:
    with pytest.raises(ConfigurationError) as refused:
        PRICES.price_of("claude-mythos-preview")
    said = str(refused.value)
    assert "no published price" in said and "AGENTYARD_PRICES_FILE" in said
    assert '[models."claude-mythos-preview"]' in said


def test_a_price_file_prices_a_model_that_has_no_published_price(tmp_path: Path) -> None:
    path = tmp_path / "prices.toml"
    path.write_text('[models."claude-mythos-preview"]\ninput = 25\noutput = 125\n')
    assert PriceTable.load(path).price_of("claude-mythos-preview").output == Decimal(125)


def test_a_newer_version_of_a_family_is_not_priced_as_the_family() -> None:
    # claude-opus-4 is $15 / $75; a later Opus 4.x need not be
    with pytest.raises(ConfigurationError, match="no price for model 'claude-opus-4-9'"):
        PRICES.price_of("claude-opus-4-9")
    assert PRICES.price_of("claude-opus-4-20250514") == DEFAULT_PRICES["claude-opus-4"]
    assert PRICES.price_of("claude-3-7-sonnet-latest") == DEFAULT_PRICES["claude-3-7-sonnet"]


def test_models_with_their_own_cache_rates_are_billed_at_them() -> None:
    # Fable 5.1 reads its cache at 0.025 x its $10 input: 0.25 micro-dollars a token
    assert PRICES.cost_micro("claude-fable-5-1", Usage(cache_read_input_tokens=4000)) == 1000
    # Opus 5.5 at 0.05 x its $4 input
    assert PRICES.cost_micro("claude-opus-5-5", Usage(cache_read_input_tokens=4000)) == 800


def test_a_long_prompt_is_billed_at_the_long_prompt_prices_every_token_of_it() -> None:
    short = Usage(input_tokens=100_000, output_tokens=1_000)
    long = Usage(input_tokens=60_000, cache_read_input_tokens=40_001, output_tokens=1_000)
    # Haiku 5.5: $0.10 / $0.50 up to 100 000 prompt tokens, $0.50 / $2.50 and $0.05 reads over
    assert PRICES.cost_micro("claude-haiku-5-5", short) == 10_000 + 500
    assert PRICES.cost_micro("claude-haiku-5-5", long) == 30_000 + 2_001 + 2_500
    # ... and a call whose prompt may be that long holds its worst case at those prices
    assert PRICES.worst_case_micro("claude-haiku-5-5", 150_000, 1_000) == 150_000 + 2_500


def test_a_price_file_gives_a_model_long_prompt_prices(tmp_path: Path) -> None:
    path = tmp_path / "prices.toml"
    path.write_text(
        '[models."mine"]\ninput = 1\noutput = 2\nlong_prompt_over = 1000\n'
        '[models."mine".long_prompt]\ninput = 4\noutput = 8\n'
    )
    price = PriceTable.load(path).price_of("mine")
    assert price.for_prompt(1000).input == 1 and price.for_prompt(1001).input == 4
    path.write_text('[models."mine"]\ninput = 1\noutput = 2\nlong_prompt_over = 1000\n')
    with pytest.raises(ConfigurationError, match="needs both long_prompt_over"):
        PriceTable.load(path)
