"""Holds written by the earlier version of the budget scripts, as a rolling upgrade meets them:
a worker of that version holds its calls as a hash of the full names of its counter keys and
settles them with its own script, while a coordinator of this version may have to book the
call when that worker dies. On fakeredis running the real Lua scripts."""

from __future__ import annotations

import fakeredis
import pytest

from storage.budget_store import Booked, BudgetStore, Cap

RUN = Cap("run:r1", 5_000, "run")


@pytest.fixture
def store() -> BudgetStore:
    store = BudgetStore(fakeredis.FakeRedis(), team="t", key_prefix="test:")
    store.restore({})
    return store


def _held_by_the_earlier_version(store: BudgetStore, hold_id: str, amount: int) -> str:
    """Write what the earlier version's reservation wrote for a call held against ``RUN``: the
    reserved counter raised, and a hash naming the counter keys in full, listed in ``holds``.
    Returns the run's spent counter key."""
    client = store._client
    reserved, spent = (f"{store.prefix}{kind}:{RUN.scope}:total" for kind in ("reserved", "spent"))
    client.incrby(reserved, amount)
    client.set(spent, 0, nx=True)
    hold = f"{store.prefix}hold:{hold_id}"
    client.hset(hold, mapping={"amount": amount, "reserved": reserved, "spent": spent})
    client.expire(hold, 60 + 86400)
    seconds, _ = client.time()
    client.zadd(f"{store.prefix}holds", {hold_id: seconds + 60})
    return spent


def test_a_call_held_by_a_worker_of_the_earlier_version_is_forfeited_at_what_it_held(
    store: BudgetStore,
) -> None:
    # Given a worker of the earlier version that held a call and died
    spent_key = _held_by_the_earlier_version(store, "s1:1", 3_000)

    # When the sweep books it, twice (its confirmation after the ledger row)
    first = store.forfeit("s1:1", 9_999, [RUN])
    again = store.forfeit("s1:1", 9_999, [RUN])

    # Then what it held is booked as spent, once, and it is no longer open
    assert (first.booked, first.amount_micro) == (Booked.FORFEITED, 3_000)
    assert again == first
    assert store.spent(RUN.scope, "total") == 3_000
    assert store.reserved(RUN.scope, "total") == 0
    assert store.holds() == []
    # in the form that version's settlement reads, should its worker have been only slow
    assert store._client.get(f"{store.prefix}expired:s1:1") == f"3000|{spent_key}".encode()


def test_a_call_the_earlier_version_settled_is_known_with_its_cost(store: BudgetStore) -> None:
    store._client.set(f"{store.prefix}settled:s1:1", 1_234, ex=86400)

    found = store.forfeit("s1:1", 3_000, [RUN])

    assert (found.booked, found.amount_micro) == (Booked.SETTLED, 1_234)
    assert store.spent(RUN.scope, "total") == 0


def test_holds_of_both_versions_are_listed_and_counted_as_held(store: BudgetStore) -> None:
    _held_by_the_earlier_version(store, "old:1", 3_000)
    store.reserve("new:1", 1_500, 60, [RUN])

    assert sorted(store.holds()) == [("new:1", 1_500), ("old:1", 3_000)]
    held = store.held_now()
    assert (held.count, held.micro) == (2, 4_500)
    assert store.reserve("new:2", 600, 60, [RUN]) is not None  # 3 000 + 1 500 + 600 > 5 000
