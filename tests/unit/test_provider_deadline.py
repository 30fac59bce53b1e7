"""The agent's deadline is the provider's time on the wire: an answer that arrived is used however
late the worker comes to read it, and a provider that hangs or trickles is cut off at the
deadline. Real SDK, real sockets, the in-process stub server."""

from __future__ import annotations

import time
from collections.abc import Iterator

import anthropic
import httpx2
import pytest

from storage.errors import ProviderTimeout, WorkerBusy
from tests.support import reads_late
from tests.unit.test_anthropic_provider import make_request
from workers.providers.anthropic_provider import AnthropicProvider
from workers.providers.wire_deadline import WireClock, proxy_for
from workers.stub_anthropic import StubAnthropicServer


@pytest.fixture
def provider(stub: StubAnthropicServer) -> Iterator[AnthropicProvider]:
    with AnthropicProvider("sk-test", stub.base_url) as p:
        yield p


@pytest.fixture
def worker_reads_late(monkeypatch: pytest.MonkeyPatch) -> float:
    return reads_late(monkeypatch, delay_s=1.0)


def test_an_answer_the_worker_reads_after_the_deadline_is_used(
    provider: AnthropicProvider, stub: StubAnthropicServer, worker_reads_late: float
) -> None:
    # Given a provider that answers in 0.1 s, and a worker that comes to read a second late
    stub.script([{"delay_s": 0.1}])

    # When the call is made with a deadline of half a second
    started = time.perf_counter()
    response = provider.complete(make_request(timeout_s=0.5))
    took = time.perf_counter() - started

    # Then the answer is used: the provider delivered it within its deadline
    assert response.text
    assert took >= worker_reads_late
    assert stub.stats()["by_status"] == {"200": 1}


def test_a_provider_that_never_answers_frees_the_thread_at_the_deadline(
    provider: AnthropicProvider, stub: StubAnthropicServer
) -> None:
    # Given a provider that takes 5 s
    stub.script([{"delay_s": 5}])

    # When the call is made with a deadline of 0.4 s
    started = time.perf_counter()
    with pytest.raises(ProviderTimeout) as caught:
        provider.complete(make_request(timeout_s=0.4))

    # Then it gives up at the deadline, and says the provider did not answer in time
    assert time.perf_counter() - started < 2.5
    assert caught.value.provider_failure
    assert "of the request being sent" in str(caught.value)


def test_a_provider_that_trickles_its_answer_is_cut_off_at_the_deadline(
    provider: AnthropicProvider, stub: StubAnthropicServer
) -> None:
    # Given a provider that sends its headers at once, then its body over 4 s, a piece every 0.2 s
    # (each read gets bytes well within the SDK's per-read timeout)
    stub.script([{"trickle_s": 4.0}])

    # When the call is made with a deadline of 0.8 s
    started = time.perf_counter()
    with pytest.raises(ProviderTimeout):
        provider.complete(make_request(timeout_s=0.8))

    # Then the whole answer was held to the deadline, not each read of it
    assert time.perf_counter() - started < 2.5


def test_the_same_trickle_within_the_deadline_is_read_whole(
    provider: AnthropicProvider, stub: StubAnthropicServer
) -> None:
    stub.script([{"trickle_s": 0.5}])
    response = provider.complete(make_request(timeout_s=5.0))
    assert response.text
    assert response.wire_s is not None and 0.4 < response.wire_s < 5.0


def test_the_answer_says_how_long_the_provider_took(
    provider: AnthropicProvider, stub: StubAnthropicServer
) -> None:
    stub.script([{"delay_s": 0.3}])
    response = provider.complete(make_request(timeout_s=5.0))
    assert response.wire_s is not None and 0.3 <= response.wire_s < 3.0


def test_no_free_connection_in_the_workers_pool_is_not_the_providers_failure(
    provider: AnthropicProvider,
) -> None:
    # Given the SDK's timeout error caused by the connection pool (the request was never sent)
    request = httpx2.Request("POST", "http://stub.invalid/v1/messages")
    error = anthropic.APITimeoutError(request=request)
    error.__cause__ = httpx2.PoolTimeout("no connection")

    # When it is translated
    translated = provider._translate(error, make_request(timeout_s=1.0))

    # Then it may be retried, but it is no failure of the provider's
    assert isinstance(translated, WorkerBusy)
    assert translated.retryable and not translated.provider_failure


def test_past_the_deadline_a_read_takes_only_what_is_already_there() -> None:
    clock = WireClock(deadline_s=1.0, sent_at=time.monotonic() - 5.0)
    assert clock.read_timeout(30.0) == pytest.approx(0.001)
    fresh = WireClock(deadline_s=1.0, sent_at=time.monotonic())
    assert 0.9 < (fresh.read_timeout(30.0) or 0) <= 1.0
    assert fresh.read_timeout(0.2) == 0.2  # the SDK's own timeout is never lengthened


def test_calls_go_through_the_proxy_the_environment_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
    assert proxy_for("https://api.anthropic.com") == "http://proxy.internal:3128"
    assert proxy_for("http://127.0.0.1:8765") is None
