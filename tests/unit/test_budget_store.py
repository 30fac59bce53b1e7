"""Reservations against spend caps, on fakeredis running the real Lua scripts."""

from __future__ import annotations

import random
import threading
import time

import fakeredis
import pytest

from storage.budget_store import Booked, BudgetStore, Cap, CountersNotLoaded, Refusal, Settled

AGENT = Cap("agent:writer", 10_000, "day")
RUN = Cap("run:r1", 5_000, "run")


@pytest.fixture
def store() -> BudgetStore:
    store = BudgetStore(fakeredis.FakeRedis(), team="t", key_prefix="test:")
    store.restore({})  # the counters are loaded (from an empty ledger)
    return store


def test_nothing_is_held_while_the_counters_are_not_loaded() -> None:
    store = BudgetStore(fakeredis.FakeRedis(), team="t")
    with pytest.raises(CountersNotLoaded):
        store.reserve("s1:1", 1, 60, [AGENT])
    store.restore({(AGENT.scope, store.today()): 9_999})
    assert store.reserve("s1:1", 1, 60, [AGENT]) is None
    assert store.reserve("s2:1", 2, 60, [AGENT]) is not None  # 9 999 + 1 + 2 > 10 000


def test_a_call_that_fits_every_cap_is_held_against_each_of_them(store: BudgetStore) -> None:
    assert store.reserve("s1:1", 3_000, 60, [AGENT, RUN]) is None
    today = store.today()
    assert store.reserved("agent:writer", today) == 3_000
    assert store.reserved("run:r1", "total") == 3_000
    assert store.spent("agent:writer", today) == 0


def test_a_call_that_would_break_a_cap_is_refused_and_holds_nothing(store: BudgetStore) -> None:
    assert store.reserve("s1:1", 3_000, 60, [AGENT, RUN]) is None
    refusal = store.reserve("s2:1", 2_500, 60, [AGENT, RUN])

    assert refusal == Refusal("run:r1", spent_micro=0, reserved_micro=3_000, cap_micro=5_000)
    assert store.reserved("agent:writer", store.today()) == 3_000  # nothing held for s2


def test_settling_books_the_real_cost_and_frees_the_rest_once(store: BudgetStore) -> None:
    store.reserve("s1:1", 3_000, 60, [AGENT, RUN])

    assert store.settle("s1:1", 1_200) is Settled.NOW
    assert store.settle("s1:1", 1_200) is Settled.BEFORE  # a second settlement changes nothing
    today = store.today()
    assert (store.spent("run:r1", "total"), store.reserved("run:r1", "total")) == (1_200, 0)
    assert (store.spent("agent:writer", today), store.reserved("agent:writer", today)) == (1_200, 0)
    # What was settled counts against the next reservation
    assert store.reserve("s2:1", 3_900, 60, [RUN]) is not None
    assert store.reserve("s2:1", 3_800, 60, [RUN]) is None


def test_holding_again_under_the_same_id_holds_nothing_more(store: BudgetStore) -> None:
    store.reserve("s1:1", 3_000, 60, [RUN])
    assert store.reserve("s1:1", 3_000, 60, [RUN]) is None
    assert store.reserved("run:r1", "total") == 3_000


def test_a_hold_whose_time_ran_out_stays_booked_at_its_worst_case_until_a_late_settlement(
    store: BudgetStore,
) -> None:
    store.reserve("s1:1", 4_000, 0, [RUN])  # a worker killed mid-call: its hold runs out
    assert store.reserve("s2:1", 900, 60, [RUN]) is None  # forfeited on the way in
    assert store.spent("run:r1", "total") == 4_000  # booked as spent: the call may be billed
    assert store.reserved("run:r1", "total") == 900
    assert store.reserve("s3:1", 200, 60, [RUN]) is not None  # 4 000 + 900 + 200 > 5 000

    assert store.settle("s1:1", 700) is Settled.AFTER_EXPIRY  # the call did finish, late
    assert store.spent("run:r1", "total") == 700  # corrected to what it cost


def test_calls_cut_off_by_kills_never_add_up_past_a_cap(store: BudgetStore) -> None:
    # Given calls that fill the run's cap, every one of them cut off by a kill
    for n in range(5):
        assert store.reserve(f"s{n}:1", 1_000, 0, [RUN]) is None
    time.sleep(1.1)

    # Then whatever they cost, no further call may go ahead: their worst cases are spent
    assert store.reserve("s9:1", 1, 60, [RUN]) is not None
    assert store.spent("run:r1", "total") == 5_000


def test_forfeiting_a_call_still_held_books_what_it_held_once(store: BudgetStore) -> None:
    store.reserve("s1:1", 3_000, 60, [AGENT, RUN])

    first = store.forfeit("s1:1", 9_999, [AGENT, RUN])
    again = store.forfeit("s1:1", 9_999, [AGENT, RUN])

    assert (first.booked, first.amount_micro, first.known) == (Booked.FORFEITED, 3_000, False)
    assert again == first
    assert store.spent("run:r1", "total") == 3_000 and store.reserved("run:r1", "total") == 0
    assert store.spent("agent:writer", store.today()) == 3_000


def test_forfeiting_a_call_that_settled_gives_its_known_cost_and_books_nothing_more(
    store: BudgetStore,
) -> None:
    store.reserve("s1:1", 3_000, 60, [RUN])
    store.settle("s1:1", 1_234)

    found = store.forfeit("s1:1", 3_000, [RUN])

    assert (found.booked, found.amount_micro, found.known) == (Booked.SETTLED, 1_234, True)
    assert store.spent("run:r1", "total") == 1_234


def test_forfeiting_a_call_redis_never_saw_books_the_worst_case_given_until_it_settles(
    store: BudgetStore,
) -> None:
    found = store.forfeit("s1:1", 2_500, [RUN])
    assert (found.booked, found.amount_micro) == (Booked.UNHELD, 2_500)
    assert store.spent("run:r1", "total") == 2_500

    assert store.settle("s1:1", 400) is Settled.AFTER_EXPIRY  # its worker was alive after all
    assert store.spent("run:r1", "total") == 400


def test_forfeiting_after_redis_lost_its_data_waits_for_the_counters() -> None:
    store = BudgetStore(fakeredis.FakeRedis(), team="t")
    with pytest.raises(CountersNotLoaded):
        store.forfeit("s1:1", 2_500, [RUN])


def test_a_settlement_whose_hold_redis_lost_is_booked_on_the_caps_it_names() -> None:
    client = fakeredis.FakeRedis()
    store = BudgetStore(client, team="t")
    store.restore({})
    store.reserve("s1:1", 3_000, 60, [AGENT, RUN])  # a call goes out
    client.flushall()  # Redis loses its data while the call is under way

    # Nothing is booked until the counters are back from the ledger...
    with pytest.raises(CountersNotLoaded):
        store.settle("s1:1", 1_200, [AGENT, RUN])
    store.restore({(AGENT.scope, store.today()): 5_000})  # the ledger, without this call yet

    # ...then the call's cost goes on every cap it was held against, once
    assert store.settle("s1:1", 1_200, [AGENT, RUN]) is Settled.HOLD_LOST
    assert store.settle("s1:1", 1_200, [AGENT, RUN]) is Settled.BEFORE
    assert store.spent(AGENT.scope, store.today()) == 6_200
    assert store.spent(RUN.scope, "total") == 1_200
    assert client.ttl(f"{store.prefix}spent:{RUN.scope}:total") > 0  # a run's keys still expire


def test_a_settlement_of_an_unknown_hold_under_no_cap_books_nothing(store: BudgetStore) -> None:
    assert store.settle("never-held:1", 500) is Settled.BEFORE
    assert store.spent(AGENT.scope, store.today()) == 0


def test_sixty_four_concurrent_callers_never_settle_more_than_the_cap(store: BudgetStore) -> None:
    cap, worst = Cap("agent:busy", 200_000, "total"), 1_000
    settled: list[int] = []
    lock = threading.Lock()

    def caller(n: int) -> None:
        rng = random.Random(n)
        for i in range(1_000):
            refusal = store.reserve(f"{n}:{i}", worst, 60, [cap])
            while refusal is not None:
                if refusal.reserved_micro == 0:
                    return  # spent: not even one more worst case fits
                time.sleep(0.001)  # others' calls are under way and may settle for less
                refusal = store.reserve(f"{n}:{i}", worst, 60, [cap])
            cost = rng.randint(worst // 2, worst)
            store.settle(f"{n}:{i}", cost)
            with lock:
                settled.append(cost)

    threads = [threading.Thread(target=caller, args=(n,)) for n in range(64)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sum(settled) == store.spent("agent:busy", "total")
    assert cap.limit_micro - worst < sum(settled) <= cap.limit_micro


def test_counters_of_a_day_or_a_run_go_away_by_themselves_and_total_ones_stay(
    store: BudgetStore,
) -> None:
    store.reserve("s1:1", 1, 60, [AGENT, RUN, Cap("team:all", 10, "total")])
    client = store._client
    day_ttl = client.ttl(f"{store.prefix}spent:agent:writer:{store.today()}")
    run_ttl = client.ttl(f"{store.prefix}reserved:run:r1:total")
    assert 2 * 86400 < day_ttl <= 3 * 86400
    assert 6 * 86400 < run_ttl <= 7 * 86400
    assert client.ttl(f"{store.prefix}reserved:team:all:total") == -1
    store.settle("s1:1", 1)
    assert client.ttl(f"{store.prefix}spent:run:r1:total") > 6 * 86400  # kept by the settlement


def test_a_refused_call_holds_nothing_under_its_id_and_is_held_once_there_is_room(
    store: BudgetStore,
) -> None:
    store.reserve("s1:1", 3_000, 60, [RUN])
    assert store.reserve("s2:1", 2_500, 60, [RUN]) is not None
    assert [hold_id for hold_id, _ in store.holds()] == ["s1:1"]

    store.settle("s1:1", 1_000)

    assert store.reserve("s2:1", 2_500, 60, [RUN]) is None  # tried again, and held this time
    assert store.reserved("run:r1", "total") == 2_500


def test_a_second_settlement_with_another_cost_changes_nothing(store: BudgetStore) -> None:
    store.reserve("s1:1", 3_000, 60, [RUN])
    store.settle("s1:1", 1_200)

    assert store.settle("s1:1", 2_900) is Settled.BEFORE

    assert store.spent("run:r1", "total") == 1_200
    assert store.forfeit("s1:1", 3_000, [RUN]).amount_micro == 1_200  # the cost first settled


def test_a_hold_that_runs_out_sooner_than_those_open_is_forfeited_when_it_does(
    store: BudgetStore,
) -> None:
    # Given a long hold, then a shorter one whose worker is killed
    store.reserve("slow:1", 1_000, 600, [RUN])
    store.reserve("killed:1", 2_000, 0, [RUN])

    # When the next call is held
    assert store.reserve("next:1", 100, 60, [RUN]) is None

    # Then the short hold was forfeited on the way in, though the long one is not due yet
    assert store.spent("run:r1", "total") == 2_000
    assert store.reserved("run:r1", "total") == 1_000 + 100


def test_every_hold_past_its_time_is_forfeited_a_hundred_per_reservation(
    store: BudgetStore,
) -> None:
    # Given 150 calls cut off by kills, their holds all past their time together
    cap = Cap("agent:many", 10**9, "total")
    for n in range(150):
        store.reserve(f"killed{n}:1", 10, 2, [cap])
    time.sleep(2.1)

    # Then each reservation forfeits a hundred of them, the next one the rest
    store.reserve("next:1", 1, 60, [cap])
    assert store.spent(cap.scope, "total") == 100 * 10
    store.reserve("next:2", 1, 60, [cap])
    assert store.spent(cap.scope, "total") == 150 * 10
    assert store.reserved(cap.scope, "total") == 2


def test_each_call_of_a_run_moves_the_life_of_its_counters_a_week_on(store: BudgetStore) -> None:
    store.reserve("s1:1", 1, 60, [RUN])
    store.settle("s1:1", 1)
    client = store._client
    run_keys = [f"{store.prefix}{kind}:{RUN.scope}:total" for kind in ("spent", "reserved")]
    for key in run_keys:
        client.expire(key, 60)  # as if the run's last call was almost a week ago

    store.reserve("s2:1", 1, 60, [RUN])

    assert all(6 * 86400 < client.ttl(key) <= 7 * 86400 for key in run_keys)


def test_the_record_of_a_settled_or_forfeited_call_goes_away_by_itself(
    store: BudgetStore,
) -> None:
    store.reserve("s1:1", 1_000, 60, [RUN])
    store.settle("s1:1", 500)
    store.forfeit("s2:1", 1_000, [RUN])  # a call Redis never saw

    client = store._client
    assert 0 < client.ttl(f"{store.prefix}call:s1:1") <= 86400 + 60
    assert 0 < client.ttl(f"{store.prefix}call:s2:1") <= 86400
