"""AnthropicProvider driving the real ``anthropic`` SDK against the in-process stub server."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import SecretStr

from storage.errors import (
    ConfigurationError,
    Overloaded,
    ProviderError,
    ProviderRejected,
    ProviderTimeout,
    ProviderUnavailable,
    RateLimited,
)
from storage.settings import Settings
from workers.providers.anthropic_provider import AnthropicProvider
from workers.providers.base import ChatMessage, ModelRequest
from workers.stub_anthropic import StubAnthropicServer

API_KEY = "sk-ant-test-TOPSECRET-0123456789"


def make_request(timeout_s: float = 5.0, text: str = "Name three rivers.") -> ModelRequest:
    return ModelRequest(
        model="claude-stub",
        system="You are a geographer.",
        messages=(ChatMessage("user", text),),
        max_tokens=200,
        timeout_s=timeout_s,
        request_key="step-1:0",
    )


@pytest.fixture
def stub() -> Iterator[StubAnthropicServer]:
    with StubAnthropicServer() as server:
        yield server


@pytest.fixture
def provider(stub: StubAnthropicServer) -> Iterator[AnthropicProvider]:
    with AnthropicProvider(API_KEY, stub.base_url) as p:
        yield p


def fail_with(
    provider: AnthropicProvider,
    stub: StubAnthropicServer,
    entry: dict[str, Any],
    timeout_s: float = 5.0,
) -> ProviderError:
    """Script one fault, make one call, and return the error it raised."""
    stub.script([entry])
    with pytest.raises(ProviderError) as caught:
        provider.complete(make_request(timeout_s))
    return caught.value


def test_a_normal_call_returns_text_and_full_usage(
    provider: AnthropicProvider, stub: StubAnthropicServer
) -> None:
    # Given a reply that read 100 tokens from the cache and wrote 50 to it
    stub.script([{"cache_read_input_tokens": 100, "cache_creation_input_tokens": 50}])

    # When a call is made
    response = provider.complete(make_request())

    # Then the text comes back with every kind of token counted
    assert "Name three rivers." in response.text
    assert response.model == "claude-stub"
    assert response.stop_reason == "end_turn"
    assert response.reasoning is None
    assert response.usage.input_tokens > 0
    assert response.usage.output_tokens > 0
    assert response.usage.cache_read_input_tokens == 100
    assert response.usage.cache_creation_input_tokens == 50


def test_thinking_blocks_become_the_reasoning(
    provider: AnthropicProvider, stub: StubAnthropicServer
) -> None:
    stub.script([{"thinking": "Rivers are long.", "text": "Nile, Amazon, Danube."}])

    response = provider.complete(make_request())

    assert response.text == "Nile, Amazon, Danube."
    assert response.reasoning == "Rivers are long."


def test_a_429_with_retry_after_is_rate_limited_with_the_hint(
    provider: AnthropicProvider, stub: StubAnthropicServer
) -> None:
    error = fail_with(provider, stub, {"status": 429, "retry_after": 1.5})

    assert isinstance(error, RateLimited)
    assert error.retryable
    assert error.status == 429
    assert error.retry_after_s == 1.5


def test_retry_after_ms_wins_over_retry_after(
    provider: AnthropicProvider, stub: StubAnthropicServer
) -> None:
    error = fail_with(provider, stub, {"status": 429, "retry_after": 10, "retry_after_ms": 250})
    assert error.retry_after_s == 0.25


@pytest.mark.parametrize(
    "entry",
    [
        {"status": 429, "error_code": "enforced_spend_limit_reached", "message": "Limit."},
        {"status": 429, "message": "You have reached your specified API usage limits."},
    ],
    ids=["by error code", "by message"],
)
def test_a_429_for_a_spend_limit_is_rejected_not_retried(
    provider: AnthropicProvider, stub: StubAnthropicServer, entry: dict[str, Any]
) -> None:
    error = fail_with(provider, stub, entry)

    assert isinstance(error, ProviderRejected)
    assert not error.retryable
    assert error.status == 429


def test_a_529_is_overloaded_after_exactly_one_http_call(
    provider: AnthropicProvider, stub: StubAnthropicServer
) -> None:
    # Given the server is overloaded
    # When one call is made
    error = fail_with(provider, stub, {"status": 529})

    # Then it is Overloaded, and the SDK did not retry behind agentyard's back
    assert isinstance(error, Overloaded)
    assert error.status == 529
    assert stub.stats()["calls"] == 1


def test_every_call_names_its_attempt_to_the_server(
    provider: AnthropicProvider, stub: StubAnthropicServer
) -> None:
    provider.complete(make_request())
    assert stub.stats()["by_request"] == {"step-1:0": [200]}


@pytest.mark.parametrize("status", [429, 500])
def test_the_sdk_never_retries_a_retryable_status(
    provider: AnthropicProvider, stub: StubAnthropicServer, status: int
) -> None:
    fail_with(provider, stub, {"status": status})
    assert stub.stats()["calls"] == 1


def test_an_overloaded_error_type_is_overloaded_whatever_the_status(
    provider: AnthropicProvider, stub: StubAnthropicServer
) -> None:
    error = fail_with(provider, stub, {"status": 503, "error_type": "overloaded_error"})
    assert isinstance(error, Overloaded)


def test_a_500_is_unavailable(provider: AnthropicProvider, stub: StubAnthropicServer) -> None:
    error = fail_with(provider, stub, {"status": 500})

    assert isinstance(error, ProviderUnavailable)
    assert error.retryable
    assert error.status == 500


def test_a_5xx_passes_on_its_retry_after(
    provider: AnthropicProvider, stub: StubAnthropicServer
) -> None:
    error = fail_with(provider, stub, {"status": 503, "retry_after": 2})
    assert isinstance(error, ProviderUnavailable)
    assert error.retry_after_s == 2.0


def test_a_response_slower_than_the_timeout_is_a_provider_timeout(
    provider: AnthropicProvider, stub: StubAnthropicServer
) -> None:
    error = fail_with(provider, stub, {"delay_s": 5}, timeout_s=0.3)

    assert isinstance(error, ProviderTimeout)
    assert error.retryable


@pytest.mark.parametrize("status", [400, 401, 403, 404, 413])
def test_other_4xx_are_rejected(
    provider: AnthropicProvider, stub: StubAnthropicServer, status: int
) -> None:
    error = fail_with(provider, stub, {"status": status})

    assert isinstance(error, ProviderRejected)
    assert not error.retryable
    assert error.status == status


def test_an_unreachable_server_is_unavailable() -> None:
    # Given a port nothing listens on
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    # When a call is made there
    with (
        AnthropicProvider(API_KEY, f"http://127.0.0.1:{port}") as provider,
        pytest.raises(ProviderUnavailable),
    ):
        provider.complete(make_request())


@pytest.mark.parametrize(
    "entry",
    [
        {"status": 401, "message": f"invalid x-api-key {API_KEY}"},
        {"status": 429, "retry_after": 1},
        {"status": 529},
        {"status": 500, "message": f"upstream saw Bearer {API_KEY}"},
        {"delay_s": 5},
    ],
)
def test_the_api_key_never_appears_in_an_error(
    provider: AnthropicProvider, stub: StubAnthropicServer, entry: dict[str, Any]
) -> None:
    # Given a server that may even echo the key back
    # When the call fails
    error = fail_with(provider, stub, entry, timeout_s=0.3)

    # Then neither the error nor what it chains to mentions the key
    assert API_KEY not in str(error)
    assert API_KEY not in repr(error)
    assert error.__cause__ is None
    assert error.__suppress_context__


def test_the_provider_repr_hides_the_key(provider: AnthropicProvider) -> None:
    assert API_KEY not in repr(provider)


def test_no_key_and_no_base_url_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="AGENTYARD_ANTHROPIC_API_KEY"):
        AnthropicProvider(None, None)


def test_no_key_for_the_real_api_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="AGENTYARD_ANTHROPIC_API_KEY"):
        AnthropicProvider("", "https://api.anthropic.com")


def test_no_key_is_fine_against_the_stub(stub: StubAnthropicServer) -> None:
    with AnthropicProvider(None, stub.base_url) as provider:
        assert provider.complete(make_request()).text


def test_many_threads_share_one_provider(
    provider: AnthropicProvider, stub: StubAnthropicServer
) -> None:
    # Given eight worker threads, each making five calls with one of two timeouts
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(5):
                provider.complete(make_request(timeout_s=5.0 + n % 2, text=f"q{n}-{i}"))
        except BaseException as exc:  # collected and re-checked in the test thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # Then every call got through, once each
    assert errors == []
    assert stub.stats()["calls"] == 40


def test_the_provider_is_built_from_settings(stub: StubAnthropicServer) -> None:
    settings = Settings(anthropic_api_key=SecretStr(API_KEY), anthropic_base_url=stub.base_url)

    with AnthropicProvider.from_settings(settings) as provider:
        assert provider.complete(make_request()).text
