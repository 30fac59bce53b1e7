"""The preamble, prompt caching and token counting: AnthropicProvider driving the real
``anthropic`` SDK against the stub server (whose cache is on a clock the test moves), the offline
provider, and the budget's input bound."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import replace

import pytest

from orchestration.budget import TOKENS_PER_MESSAGE, input_tokens_bound
from storage.errors import ProviderUnavailable
from workers.providers.anthropic_provider import AnthropicProvider
from workers.providers.base import ChatMessage, ModelRequest, Usage
from workers.providers.offline import OfflineProvider
from workers.stub_anthropic import MIN_CACHE_TOKENS, StubAnthropicServer

API_KEY = "sk-ant-test-TOPSECRET-0123456789"
# About 1,100 tokens at the stub's four characters a token: over the minimum it caches.
LONG_SYSTEM = "You are a geographer who answers with care and cites the atlas. " * 70
SUMMARY = "Summary of the run so far: the researcher listed twelve rivers. " * 10


class Clock:
    """Monotonic seconds that move only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_request(
    text: str = "Name three rivers.",
    *,
    system: str = LONG_SYSTEM,
    preamble: str = "",
    cache: bool = True,
) -> ModelRequest:
    return ModelRequest(
        model="claude-stub",
        system=system,
        messages=(ChatMessage("user", text),),
        max_tokens=200,
        timeout_s=5.0,
        request_key="step-1:1",
        preamble=preamble,
        cache=cache,
    )


def input_in_all(usage: Usage) -> int:
    return usage.input_tokens + usage.cache_creation_input_tokens + usage.cache_read_input_tokens


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def stub(clock: Clock) -> Iterator[StubAnthropicServer]:
    with StubAnthropicServer(clock=clock) as server:
        yield server


@pytest.fixture
def provider(stub: StubAnthropicServer) -> Iterator[AnthropicProvider]:
    with AnthropicProvider(API_KEY, stub.base_url) as p:
        yield p


def test_a_second_call_reads_the_system_prompt_from_cache(
    provider: AnthropicProvider, stub: StubAnthropicServer
) -> None:
    # Given a first call that marks its long system prompt for the cache
    first = provider.complete(make_request()).usage
    assert first.cache_creation_input_tokens >= MIN_CACHE_TOKENS
    assert first.cache_read_input_tokens == 0

    # When the same call is made again
    second = provider.complete(make_request()).usage

    # Then it reads what the first one wrote, and pays plain input only for what follows it
    assert second.cache_read_input_tokens == first.cache_creation_input_tokens
    assert second.cache_creation_input_tokens == 0
    assert second.input_tokens == input_in_all(second) - second.cache_read_input_tokens
    assert second.input_tokens < provider.complete(make_request(cache=False)).usage.input_tokens
    assert input_in_all(second) == input_in_all(first)
    assert (stub.stats()["cache_writes"], stub.stats()["cache_reads"]) == (1, 1)


def test_a_call_that_asks_for_no_cache_neither_writes_nor_reads_it(
    provider: AnthropicProvider, stub: StubAnthropicServer
) -> None:
    provider.complete(make_request())

    usage = provider.complete(make_request(cache=False)).usage

    assert (usage.cache_creation_input_tokens, usage.cache_read_input_tokens) == (0, 0)
    assert (stub.stats()["cache_writes"], stub.stats()["cache_reads"]) == (1, 0)


def test_a_prefix_under_the_minimum_is_not_cached(
    provider: AnthropicProvider, stub: StubAnthropicServer
) -> None:
    # Given a short system prompt and a long last message (which gets no breakpoint)
    request = make_request("x" * 8000, system="You are a geographer.")

    # When the call is made twice
    first = provider.complete(request).usage
    second = provider.complete(request).usage

    # Then nothing was written or read: every token is plain input, both times
    for usage in (first, second):
        assert usage.cache_creation_input_tokens == 0
        assert usage.cache_read_input_tokens == 0
        assert usage.input_tokens > MIN_CACHE_TOKENS
    assert (stub.stats()["cache_writes"], stub.stats()["cache_reads"]) == (0, 0)


def test_the_minimum_cacheable_length_can_be_lowered(clock: Clock) -> None:
    with (
        StubAnthropicServer(min_cache_tokens=4, clock=clock) as stub,
        AnthropicProvider(API_KEY, stub.base_url) as provider,
    ):
        request = make_request(system="You are a geographer.")
        provider.complete(request)

        assert provider.complete(request).usage.cache_read_input_tokens == 6


def test_the_preamble_breakpoint_caches_system_and_preamble_while_the_last_message_differs(
    provider: AnthropicProvider,
) -> None:
    # Given a call with a preamble (the run's summary) after the long system prompt
    first = provider.complete(make_request("Name three rivers.", preamble=SUMMARY)).usage

    # When the next call shares both but asks something else
    second = provider.complete(make_request("Now name three lakes.", preamble=SUMMARY)).usage

    # Then it reads the system prompt and the preamble together, and only its question is new
    system_and_preamble = first.cache_creation_input_tokens
    assert system_and_preamble == -(-(len(LONG_SYSTEM) + len(SUMMARY)) // 4)
    assert second.cache_read_input_tokens == system_and_preamble
    assert second.cache_creation_input_tokens == 0
    assert second.input_tokens == input_in_all(second) - system_and_preamble


def test_a_new_preamble_reads_the_system_prompt_and_writes_the_rest(
    provider: AnthropicProvider,
) -> None:
    provider.complete(make_request(preamble=SUMMARY))
    system_only = -(-len(LONG_SYSTEM) // 4)

    usage = provider.complete(make_request(preamble=SUMMARY + " Then four lakes.")).usage

    assert usage.cache_read_input_tokens == system_only
    assert usage.cache_creation_input_tokens > 0


def test_an_expired_entry_is_written_again(
    provider: AnthropicProvider, stub: StubAnthropicServer, clock: Clock
) -> None:
    # Given a system prompt written to the cache
    written = provider.complete(make_request()).usage.cache_creation_input_tokens

    # When a call comes four minutes later, then another five minutes after that one
    clock.now += 4 * 60
    in_time = provider.complete(make_request()).usage
    clock.now += 5 * 60 + 1
    too_late = provider.complete(make_request()).usage

    # Then the first read (and refreshed) the entry, which ran out before the second
    assert in_time.cache_read_input_tokens == written
    assert too_late.cache_read_input_tokens == 0
    assert too_late.cache_creation_input_tokens == written
    assert (stub.stats()["cache_writes"], stub.stats()["cache_reads"]) == (2, 1)


def test_count_tokens_equals_the_input_the_same_call_reports_in_total(
    provider: AnthropicProvider, stub: StubAnthropicServer
) -> None:
    request = make_request(preamble=SUMMARY)

    counted = provider.count_tokens(request)
    written = provider.complete(request).usage
    read = provider.complete(request).usage

    assert counted == input_in_all(written) == input_in_all(read)
    assert counted == -(-(len(LONG_SYSTEM) + len(SUMMARY) + len("Name three rivers.")) // 4)
    # Counting consumed no scripted reply, is not a messages call, and left the cache alone
    assert stub.stats()["count_tokens_calls"] == 1
    assert stub.stats()["calls"] == 2
    assert written.cache_read_input_tokens == 0


def test_count_tokens_without_cache_or_preamble_counts_the_plain_prompt(
    provider: AnthropicProvider,
) -> None:
    request = make_request(system="", cache=False)
    assert provider.count_tokens(request) == input_in_all(provider.complete(request).usage)


def test_count_tokens_against_an_unreachable_server_is_unavailable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    with (
        AnthropicProvider(API_KEY, f"http://127.0.0.1:{port}") as provider,
        pytest.raises(ProviderUnavailable) as caught,
    ):
        provider.count_tokens(make_request())
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


def test_the_offline_provider_reads_the_preamble_as_the_start_of_the_first_user_turn() -> None:
    provider = OfflineProvider()
    plain = make_request("the telegraph", system="You are a researcher.", cache=False)
    plain = replace(plain, model="offline:echo")
    with_preamble = replace(plain, preamble="Earlier: the semaphore line.")

    before = provider.complete(plain)
    after = provider.complete(with_preamble)

    assert "Topic: Earlier: the semaphore line. the telegraph" in after.text
    assert "Topic: the telegraph" in before.text
    preamble_tokens = after.usage.input_tokens - before.usage.input_tokens
    assert preamble_tokens == len("Earlier: the semaphore line.") // 4
    assert provider.complete(replace(plain, cache=True)) == before


def test_the_budgets_input_bound_counts_the_preamble() -> None:
    plain = make_request(system="You are a geographer.")

    bound = input_tokens_bound(replace(plain, preamble="é" * 10))

    assert bound == input_tokens_bound(plain) + 20 + TOKENS_PER_MESSAGE
