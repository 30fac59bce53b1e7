"""The sweeps run in every coordinator, each by one process at a time through its lease; another
takes over when the holder stops or dies (fakeredis running the real Lua scripts)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable

import fakeredis
import pytest
import structlog

from orchestration.sweeps import Job, Sweeps
from storage.lease_store import LeaseStore


class Ledger:
    """Who did each job, in order."""

    def __init__(self) -> None:
        self.done: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def job(self, name: str, who: str) -> Callable[[], None]:
        def run() -> None:
            with self._lock:
                self.done.append((name, who))

        return run


def _coordinator(
    ledger: Ledger, who: str, leases: LeaseStore | None, every_s: float = 0.05, lease_s: float = 0.5
) -> Sweeps:
    return Sweeps(
        [
            Job("workflows", every_s, ledger.job("workflows", who)),
            Job("acks", every_s, ledger.job("acks", who)),
        ],
        leases,
        lease_s,
        holder=who,
    )


def _wait_for(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


@pytest.fixture
def leases() -> LeaseStore:
    return LeaseStore(fakeredis.FakeRedis(), team="t", key_prefix="test:")


def test_of_two_coordinators_exactly_one_does_each_sweep(leases: LeaseStore) -> None:
    ledger = Ledger()
    a, b = _coordinator(ledger, "a", leases), _coordinator(ledger, "b", leases)

    for _ in range(5):
        ran = [a.run_due("workflows"), b.run_due("workflows")]
        assert ran.count(True) == 1

    assert ledger.done == [("workflows", "a")] * 5


def test_a_coordinator_that_stops_hands_its_sweeps_over_at_once(leases: LeaseStore) -> None:
    # Given two coordinators sweeping on their threads, "a" first, with long leases
    ledger = Ledger()
    a = _coordinator(ledger, "a", leases, lease_s=60)
    a.start()
    _wait_for(lambda: ("workflows", "a") in ledger.done and ("acks", "a") in ledger.done)
    b = _coordinator(ledger, "b", leases, lease_s=60)
    b.start()
    try:
        time.sleep(0.3)
        assert {who for _, who in ledger.done} == {"a"}

        # When "a" stops (a worker's warm shutdown)
        a.stop()

        # Then "b" does both sweeps at its next look, without waiting for the leases to run out
        _wait_for(lambda: ("workflows", "b") in ledger.done and ("acks", "b") in ledger.done, 2)
    finally:
        b.stop()


def test_a_coordinator_that_dies_loses_its_sweeps_when_their_lease_runs_out(
    leases: LeaseStore,
) -> None:
    # Given "a" held the sweep's lease, then died (it renews no more, and releases nothing)
    ledger = Ledger()
    a = _coordinator(ledger, "a", leases, lease_s=0.3)
    assert a.run_due("workflows")
    b = _coordinator(ledger, "b", leases, lease_s=0.3)
    assert not b.run_due("workflows")

    # When "b" keeps looking
    started = time.monotonic()
    _wait_for(lambda: b.run_due("workflows"), timeout_s=5)

    # Then it takes the sweep over once the lease ran out
    assert 0.1 < time.monotonic() - started < 3
    assert ledger.done == [("workflows", "a"), ("workflows", "b")]


def test_a_sweep_that_fails_is_logged_and_tried_again_next_period(leases: LeaseStore) -> None:
    calls = Counter[str]()

    def flaky() -> None:
        calls["runs"] += 1
        if calls["runs"] == 1:
            raise RuntimeError("database restarting")

    sweeps = Sweeps([Job("workflows", 0.02, flaky)], leases, lease_s=1, holder="a")
    with structlog.testing.capture_logs() as logged:
        sweeps.start()
        try:
            _wait_for(lambda: calls["runs"] >= 3)
        finally:
            sweeps.stop()

    failed = [e for e in logged if e["event"] == "sweep.failed"]
    assert failed and failed[0]["error"] == "database restarting"


def test_without_shared_redis_every_coordinator_sweeps() -> None:
    ledger = Ledger()
    a, b = _coordinator(ledger, "a", None), _coordinator(ledger, "b", None)
    assert a.run_due("workflows") and b.run_due("workflows")


def test_a_lease_lasts_long_enough_to_be_renewed_twice(leases: LeaseStore) -> None:
    sweeps = Sweeps([Job("slow", 30.0, lambda: None)], leases, lease_s=10, holder="a")
    assert sweeps.lease_s(Job("slow", 30.0, lambda: None)) == 61
