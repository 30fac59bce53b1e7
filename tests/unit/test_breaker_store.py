"""Circuit breaker transitions, on fakeredis running the real Lua scripts."""

from __future__ import annotations

import threading
import time
from collections import Counter

import fakeredis
import pytest

from storage.breaker_store import BreakerStore, Decision

LIMITS = {"threshold": 3, "window_s": 60.0, "reset_s": 0.2}


@pytest.fixture
def breakers() -> BreakerStore:
    return BreakerStore(fakeredis.FakeRedis(), team="t", key_prefix="test:")


def _fail(breakers: BreakerStore, call_id: str, agent: str = "writer") -> str:
    return breakers.record(agent, call_id, False, **LIMITS)


def test_a_closed_breaker_lets_calls_through_and_opens_at_the_threshold_of_failures(
    breakers: BreakerStore,
) -> None:
    assert breakers.acquire("writer", "c1", 5).decision is Decision.ALLOW
    assert _fail(breakers, "c1") == "closed"
    assert breakers.record("writer", "c2", True, **LIMITS) == "closed"  # a success in between
    assert _fail(breakers, "c3") == "closed"
    assert _fail(breakers, "c4") == "open"  # the third failure within the window

    verdict = breakers.acquire("writer", "c5", 5)
    assert verdict.decision is Decision.REJECT and 0 < verdict.retry_in_s <= 0.2
    state = breakers.state("writer")
    assert (state.state, state.opened) == ("open", 1)
    assert breakers.acquire("reviewer", "c6", 5).decision is Decision.ALLOW  # one per agent


def test_failures_outside_the_window_do_not_add_up(breakers: BreakerStore) -> None:
    limits = {**LIMITS, "window_s": 0.1}
    breakers.record("writer", "c1", False, **limits)
    breakers.record("writer", "c2", False, **limits)
    time.sleep(0.15)
    assert breakers.record("writer", "c3", False, **limits) == "closed"


def _open(breakers: BreakerStore) -> None:
    for n in range(3):
        _fail(breakers, f"f{n}")
    time.sleep(0.25)  # reset_s has passed: the next caller finds it half-open


def test_after_its_time_one_probe_goes_through_and_its_success_closes_the_breaker(
    breakers: BreakerStore,
) -> None:
    _open(breakers)
    assert breakers.acquire("writer", "probe", 5).decision is Decision.PROBE
    assert breakers.acquire("writer", "other", 5).decision is Decision.REJECT  # one probe only
    assert breakers.record("writer", "other", True, **LIMITS) == "half_open"  # not the probe's
    assert breakers.record("writer", "probe", True, **LIMITS) == "closed"
    assert breakers.acquire("writer", "next", 5).decision is Decision.ALLOW


def test_a_failed_probe_reopens_the_breaker_with_a_fresh_deadline(breakers: BreakerStore) -> None:
    _open(breakers)
    assert breakers.acquire("writer", "probe", 5).decision is Decision.PROBE
    assert _fail(breakers, "probe") == "open"
    verdict = breakers.acquire("writer", "next", 5)
    assert verdict.decision is Decision.REJECT and verdict.retry_in_s > 0.1
    assert breakers.state("writer").opened == 2


def test_a_probe_whose_worker_died_is_replaced_when_its_lease_runs_out(
    breakers: BreakerStore,
) -> None:
    _open(breakers)
    assert breakers.acquire("writer", "lost", 0.1).decision is Decision.PROBE
    assert breakers.acquire("writer", "second", 0.1).decision is Decision.REJECT
    time.sleep(0.15)
    assert breakers.acquire("writer", "second", 0.1).decision is Decision.PROBE


def test_a_probe_not_made_gives_its_place_up_at_once(breakers: BreakerStore) -> None:
    # Given a half-open breaker whose probe a spend cap then refused
    _open(breakers)
    assert breakers.acquire("writer", "probe", 60).decision is Decision.PROBE

    breakers.not_made("writer", "probe")

    # Then the next call is the probe, long before the refused one's lease would have run out,
    # and the breaker stays half-open: nothing was learnt of the provider
    assert breakers.state("writer").state == "half_open"
    assert breakers.acquire("writer", "next", 60).decision is Decision.PROBE


def test_a_call_not_made_while_closed_or_not_the_probe_changes_nothing(
    breakers: BreakerStore,
) -> None:
    breakers.not_made("writer", "c1")  # closed
    assert breakers.state("writer").state == "closed"
    _open(breakers)
    assert breakers.acquire("writer", "probe", 60).decision is Decision.PROBE
    breakers.not_made("writer", "someone-else")
    assert breakers.acquire("writer", "next", 60).decision is Decision.REJECT


def test_sixteen_threads_racing_at_a_half_open_breaker_let_exactly_one_probe_through(
    breakers: BreakerStore,
) -> None:
    _open(breakers)
    decisions: Counter[Decision] = Counter()
    lock = threading.Lock()
    start = threading.Barrier(16)

    def caller(n: int) -> None:
        start.wait()
        decision = breakers.acquire("writer", f"c{n}", 5).decision
        with lock:
            decisions[decision] += 1

    threads = [threading.Thread(target=caller, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert decisions == {Decision.PROBE: 1, Decision.REJECT: 15}
