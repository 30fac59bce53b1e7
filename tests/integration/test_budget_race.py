"""64 callers, in two processes of 32 threads, race for one cap on a real Redis."""

from __future__ import annotations

import multiprocessing
import random
import threading
import time
from typing import Any

import pytest
import redis

from storage.budget_store import BudgetStore, Cap

pytestmark = pytest.mark.integration

CAP = Cap("agent:contended", 10_000_000, "total")  # $10: a race long enough for both processes
WORST = 10_000  # one call's worst case: 1 cent
PROCESSES, THREADS = 2, 32


def _callers(url: str, prefix: str, process: int, ready: Any) -> list[int]:
    """One process's 32 threads: reserve the worst case, settle a real cost below it, until the
    cap refuses with nothing else held. Returns every cost settled. The threads start once
    every process is ready (``ready``, a barrier across them): a process slower to start
    (spawning imports everything again) would otherwise find the cap spent."""
    store = BudgetStore(redis.Redis.from_url(url), team="race", key_prefix=prefix)
    store.spent(CAP.scope, "total")  # connected before the race
    ready.wait()
    settled: list[int] = []
    lock = threading.Lock()
    start = threading.Barrier(THREADS)

    def caller(n: int) -> None:
        rng = random.Random(process * 1000 + n)
        start.wait()
        for i in range(100_000):
            hold = f"{process}.{n}.{i}"
            refusal = store.reserve(hold, WORST, 60, [CAP])
            while refusal is not None:
                if refusal.reserved_micro == 0:
                    return  # the cap is spent: not even one more worst case fits
                time.sleep(0.001)  # others' calls are under way: they may settle for less
                refusal = store.reserve(hold, WORST, 60, [CAP])
            cost = rng.randint(WORST // 2, WORST)
            store.settle(hold, cost)
            with lock:
                settled.append(cost)

    threads = [threading.Thread(target=caller, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return settled


def test_sixty_four_racing_callers_never_overshoot_and_use_the_cap_to_within_one_call(
    redis_server_url: str, key_prefix: str
) -> None:
    loader = BudgetStore(redis.Redis.from_url(redis_server_url), team="race", key_prefix=key_prefix)
    loader.restore({})  # the counters are loaded (from an empty ledger)
    spawn = multiprocessing.get_context("spawn")
    with spawn.Manager() as manager, spawn.Pool(PROCESSES) as pool:
        ready = manager.Barrier(PROCESSES)
        per_process = pool.starmap(
            _callers, [(redis_server_url, key_prefix, p, ready) for p in range(PROCESSES)]
        )

    calls = sum(len(costs) for costs in per_process)
    total = sum(sum(costs) for costs in per_process)
    store = BudgetStore(redis.Redis.from_url(redis_server_url), team="race", key_prefix=key_prefix)
    print(
        f"\n{PROCESSES * THREADS} callers settled {calls} calls, {total} of a {CAP.limit_micro} "
        f"micro-dollar cap ({total / CAP.limit_micro:.2%}); one call's worst case is {WORST}"
    )
    assert all(costs for costs in per_process)  # both processes did get calls through
    assert store.spent(CAP.scope, "total") == total
    assert store.reserved(CAP.scope, "total") == 0
    assert CAP.limit_micro - WORST < total <= CAP.limit_micro
