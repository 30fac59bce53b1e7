"""Sweep leases on fakeredis running the real Lua scripts: one holder at a time, kept by renewing,
handed over when released or run out, each holding numbered."""

from __future__ import annotations

import time

import fakeredis
import pytest

from storage.lease_store import LeaseStore, process_id


@pytest.fixture
def leases() -> LeaseStore:
    return LeaseStore(fakeredis.FakeRedis(), team="t", key_prefix="test:")


def test_one_process_holds_a_lease_and_another_is_told_who_and_for_how_long(
    leases: LeaseStore,
) -> None:
    first = leases.hold("workflows", "a", ttl_s=10)
    second = leases.hold("workflows", "b", ttl_s=10)

    assert first.held and first.fence == 1
    assert not second.held and second.holder == "a" and 9 < second.left_s <= 10
    assert leases.holder("workflows") == "a"


def test_the_holder_keeps_its_lease_by_renewing_it_under_the_same_fence(
    leases: LeaseStore,
) -> None:
    leases.hold("workflows", "a", ttl_s=0.3)
    for _ in range(4):
        time.sleep(0.1)
        again = leases.hold("workflows", "a", ttl_s=0.3)
        assert again.held and again.fence == 1
    assert not leases.hold("workflows", "b", ttl_s=0.3).held


def test_a_lease_that_runs_out_goes_to_the_next_process_with_a_new_fence(
    leases: LeaseStore,
) -> None:
    leases.hold("workflows", "a", ttl_s=0.1)  # then "a" dies: it renews no more
    time.sleep(0.2)

    taken = leases.hold("workflows", "b", ttl_s=10)

    assert taken.held and taken.fence == 2
    back = leases.hold("workflows", "a", ttl_s=10)  # "a" comes back: it lost the lease
    assert not back.held and back.holder == "b"


def test_a_released_lease_is_taken_over_at_once_and_only_its_holder_may_release_it(
    leases: LeaseStore,
) -> None:
    leases.hold("workflows", "a", ttl_s=60)

    assert not leases.release("workflows", "b")
    assert leases.release("workflows", "a")
    assert leases.holder("workflows") is None
    assert leases.hold("workflows", "b", ttl_s=60).held


def test_each_job_has_its_own_lease(leases: LeaseStore) -> None:
    assert leases.hold("workflows", "a", ttl_s=60).held
    assert leases.hold("acks", "b", ttl_s=60).held


def test_process_ids_are_unique_even_within_one_process() -> None:
    assert process_id() != process_id()
