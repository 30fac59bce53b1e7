"""Acknowledgement bookkeeping on fakeredis running the real Lua scripts."""

from __future__ import annotations

import threading
import time

import fakeredis
import pytest

from storage.ack_store import Acked, Acknowledgement, AckStore, Begun, Overdue


@pytest.fixture
def acks() -> AckStore:
    return AckStore(fakeredis.FakeRedis(), team="t", key_prefix="test:")


def test_an_acknowledgement_in_time_leaves_nothing_overdue(acks: AckStore) -> None:
    assert acks.expect("m1", ("writer", "reviewer"), attempt=1, timeout_s=60) == 2
    assert acks.acknowledge("m1", "writer").outcome is Acked.NOW
    assert acks.acknowledge("m1", "reviewer").outcome is Acked.NOW

    assert acks.waiting() == 0
    assert acks.overdue(limit=10, claim_s=30) == []


def test_each_recipient_owes_its_own_acknowledgement(acks: AckStore) -> None:
    acks.expect("m1", ("writer", "reviewer"), attempt=1, timeout_s=0)
    acks.acknowledge("m1", "writer")

    assert acks.overdue(limit=10, claim_s=30) == [Overdue("m1", "reviewer", 1)]


def test_an_overdue_acknowledgement_is_claimed_by_one_sweeper_at_a_time(acks: AckStore) -> None:
    acks.expect("m1", ("writer",), attempt=2, timeout_s=0)

    assert acks.overdue(limit=10, claim_s=30) == [Overdue("m1", "writer", 2)]
    assert acks.overdue(limit=10, claim_s=30) == []  # a second sweeper finds nothing


def test_a_claim_whose_sweeper_died_comes_due_again(acks: AckStore) -> None:
    acks.expect("m1", ("writer",), attempt=1, timeout_s=0)
    assert len(acks.overdue(limit=10, claim_s=0)) == 1  # claimed, then the sweeper dies

    assert acks.overdue(limit=10, claim_s=30) == [Overdue("m1", "writer", 1)]


def test_a_late_acknowledgement_stops_the_copy_published_again(acks: AckStore) -> None:
    # Given an acknowledgement that did not come in time, and a sweeper about to publish again
    acks.expect("m1", ("writer",), attempt=1, timeout_s=0)
    acks.overdue(limit=10, claim_s=30)

    # When the acknowledgement of the first copy arrives late
    assert acks.acknowledge("m1", "writer").outcome is Acked.NOW

    # Then the next copy awaits nothing, and its consumer can tell it was acknowledged
    assert acks.expect("m1", ("writer",), attempt=2, timeout_s=60) == 0
    assert acks.is_acknowledged("m1", "writer")
    assert acks.give_up("m1", "writer") is False  # and it is never dead-lettered


def test_acknowledging_twice_changes_nothing_the_second_time(acks: AckStore) -> None:
    acks.expect("m1", ("writer",), attempt=1, timeout_s=60)
    assert acks.acknowledge("m1", "writer") == Acknowledgement(Acked.NOW, attempt=1)
    assert acks.acknowledge("m1", "writer") == Acknowledgement(Acked.BEFORE, attempt=1)


def test_an_acknowledgement_nobody_awaited_is_remembered(acks: AckStore) -> None:
    assert acks.acknowledge("m9", "writer").outcome is Acked.NOT_AWAITED
    assert acks.is_acknowledged("m9", "writer")


def test_a_message_given_up_is_awaited_no_more(acks: AckStore) -> None:
    acks.expect("m1", ("writer",), attempt=3, timeout_s=0)
    assert acks.give_up("m1", "writer") is True
    assert acks.waiting() == 0 and acks.overdue(limit=10, claim_s=30) == []


def test_sixteen_threads_acknowledging_at_once_acknowledge_once(acks: AckStore) -> None:
    acks.expect("m1", ("writer",), attempt=1, timeout_s=60)
    results: list[Acked] = []
    lock = threading.Lock()

    def ack() -> None:
        outcome = acks.acknowledge("m1", "writer").outcome
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=ack) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(results) == sorted([Acked.NOW] + [Acked.BEFORE] * 15)


def test_loading_again_leaves_an_entry_already_awaited_as_it_is(acks: AckStore) -> None:
    acks.expect("m1", ("writer",), attempt=2, timeout_s=0)

    assert acks.expect("m1", ("writer", "critic"), attempt=1, timeout_s=60, keep_waiting=True) == 1

    # the writer's entry kept its deadline (due now) and its attempt
    assert acks.overdue(limit=10, claim_s=30) == [Overdue("m1", "writer", 2)]


def test_a_redis_that_lost_its_data_says_the_awaited_acks_must_be_loaded_again(
    acks: AckStore,
) -> None:
    assert not acks.loaded()
    acks.mark_loaded()
    assert acks.loaded()


def test_a_copy_that_arrives_while_another_delivery_processes_the_message_is_not_processed(
    acks: AckStore,
) -> None:
    acks.mark_loaded()
    acks.expect("m1", ("writer",), attempt=1, timeout_s=60)

    assert acks.begin("m1", "writer", lease_s=60) is Begun.NOW
    assert acks.begin("m1", "writer", lease_s=60) is Begun.IN_PROGRESS
    acks.acknowledge("m1", "writer")
    assert acks.begin("m1", "writer", lease_s=60) is Begun.ACKNOWLEDGED


def test_the_lease_of_a_delivery_that_failed_or_died_lets_the_next_copy_through(
    acks: AckStore,
) -> None:
    acks.mark_loaded()
    acks.expect("m1", ("writer",), attempt=1, timeout_s=60)
    acks.begin("m1", "writer", lease_s=60)
    acks.release("m1", "writer")  # the handler failed
    assert acks.begin("m1", "writer", lease_s=0.05) is Begun.NOW
    time.sleep(0.1)  # the worker died: its lease runs out with the deadline
    assert acks.begin("m1", "writer", lease_s=60) is Begun.NOW


def test_the_time_to_acknowledge_counts_from_when_processing_began(acks: AckStore) -> None:
    acks.expect("m1", ("writer",), attempt=1, timeout_s=0)  # due at once, while still queued

    acks.begin("m1", "writer", lease_s=60)

    assert acks.overdue(limit=10, claim_s=30) == []


def test_a_delivery_after_redis_lost_its_data_is_told_to_ask_the_database(
    acks: AckStore,
) -> None:
    assert acks.begin("m1", "writer", lease_s=60) is Begun.NOW_UNSURE
    acks.mark_loaded()
    assert acks.begin("m2", "writer", lease_s=60) is Begun.NOW
