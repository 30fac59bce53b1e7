"""Spend caps' cost in Redis: reserve+settle pairs per second against plain INCR, same Redis.

    python bench/budget.py [--processes 2] [--threads 8] [--ops 4000] [--caps 3]

Each of ``--processes`` processes runs ``--threads`` threads; every thread does ``--ops``
operations as fast as it can. The baseline is one ``INCR`` per operation; agentyard's
operation is what every capped model call costs: a reservation of its worst case against
``--caps`` caps (agent per day, run, workflow type per day) and its settlement, two Lua scripts.
Both workloads run twice, alternating, under a fresh key prefix that is deleted at the end; the
better run of each is reported. Prints both rates and the ratio, Redis's own CPU time per
operation (from ``INFO commandstats``), and writes bench/results/budget.json.

It measures on a redis-server of its own (started on a free port, stopped at the end), so that
the CPU figures count its own commands alone: ``INFO commandstats`` counts every client's
EVALSHA, and on a shared Redis other programs' scripts mix in. ``--redis-url`` (or
BENCH_REDIS_URL) measures on a running server instead.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "bench" / "results"
GOAL_US = 40.0  # Redis CPU per capped call (reserve + settle), the scale issue's goal


def _parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--processes", type=int, default=2)
    p.add_argument("--threads", type=int, default=8)
    p.add_argument("--ops", type=int, default=4000, help="operations per thread")
    p.add_argument("--caps", type=int, default=3, choices=[1, 2, 3])
    p.add_argument(
        "--redis-url",
        default=os.environ.get("BENCH_REDIS_URL"),
        help="measure on this running Redis (default: a redis-server of the bench's own)",
    )
    p.add_argument("--output", type=Path, default=RESULTS / "budget.json")
    return p.parse_args()


def _worker(
    kind: str, url: str, prefix: str, process: int, threads: int, ops: int, caps: int
) -> float:
    """One process: ``threads`` threads doing ``ops`` operations each; returns the seconds."""
    import redis

    from storage.budget_store import BudgetStore, Cap

    client = redis.Redis.from_url(url)
    store = BudgetStore(client, team="bench", key_prefix=prefix)
    every_cap = [
        Cap("agent:bench", 10**15, "day"),
        Cap(f"run:bench-{process}", 10**15, "run"),
        Cap("workflow:bench", 10**15, "day"),
    ][:caps]
    start = threading.Barrier(threads + 1)

    def run(n: int) -> None:
        start.wait()
        if kind == "incr":
            key = f"{prefix}incr:{process}:{n}"
            for _ in range(ops):
                client.incr(key)
            return
        for i in range(ops):
            hold = f"{process}.{n}.{i}"
            store.reserve(hold, 5_000, 60, every_cap)
            store.settle(hold, 1_234)

    pool = [threading.Thread(target=run, args=(n,)) for n in range(threads)]
    for thread in pool:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in pool:
        thread.join()
    return time.perf_counter() - began


def _server_usec(client: Any) -> dict[str, tuple[int, int]]:
    """Redis's own count of calls and CPU microseconds, per command (INFO commandstats)."""
    stats = client.info("commandstats")
    return {
        name.removeprefix("cmdstat_"): (int(v["calls"]), int(v["usec"]))
        for name, v in stats.items()
        if name in ("cmdstat_incrby", "cmdstat_evalsha")
    }


def _measure(kind: str, args: argparse.Namespace, prefix: str) -> float:
    """Operations per second over every process (wall time of the slowest)."""
    spawn = multiprocessing.get_context("spawn")
    with spawn.Pool(args.processes) as pool:
        seconds = pool.starmap(
            _worker,
            [
                (kind, args.redis_url, prefix, p, args.threads, args.ops, args.caps)
                for p in range(args.processes)
            ],
        )
    return args.processes * args.threads * args.ops / max(seconds)


def main() -> dict[str, Any]:
    args = _parse()
    if args.redis_url:
        return _bench(args, shared=True)
    from bench.harness import own_redis

    with own_redis() as url:
        args.redis_url = url
        return _bench(args, shared=False)


def _bench(args: argparse.Namespace, shared: bool) -> dict[str, Any]:
    import redis

    prefix = f"bench-budget-{uuid.uuid4().hex[:8]}:"
    client = redis.Redis.from_url(args.redis_url)
    client.ping()
    from storage.budget_store import BudgetStore

    BudgetStore(client, team="bench", key_prefix=prefix).restore({})  # counters loaded
    runs: dict[str, list[float]] = {"incr": [], "reserve_settle": []}
    server: dict[str, list[float]] = {"incr": [], "reserve_settle": []}
    command = {"incr": "incrby", "reserve_settle": "evalsha"}  # redis-py sends INCR as INCRBY
    calls_per_op = {"incr": 1, "reserve_settle": 2}
    try:
        for _ in range(2):
            for kind in ("incr", "reserve_settle"):
                before = _server_usec(client)
                rate = _measure(kind, args, prefix)
                after = _server_usec(client)
                calls, usec = (
                    a - b
                    for a, b in zip(
                        after.get(command[kind], (0, 0)),
                        before.get(command[kind], (0, 0)),
                        strict=True,
                    )
                )
                per_op = usec / max(calls / calls_per_op[kind], 1)
                runs[kind].append(round(rate, 1))
                server[kind].append(round(per_op, 2))
                print(f"  {kind}: {rate:,.0f} ops/s, Redis CPU {per_op:.2f} us per operation")
    finally:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        for i in range(0, len(keys), 1000):
            client.delete(*keys[i : i + 1000])
    incr, reserve = max(runs["incr"]), max(runs["reserve_settle"])
    ratio = reserve / incr
    info = client.info("server")
    report = {
        "config": {
            "processes": args.processes,
            "threads_per_process": args.threads,
            "ops_per_thread": args.ops,
            "caps_per_reservation": args.caps,
            "redis": info.get("redis_version"),
            "redis_of_its_own": not shared,
            "cpu_cores": os.cpu_count(),
        },
        "ops_per_s": {"incr": incr, "reserve_settle": reserve},
        "redis_cpu_us_per_op": {k: min(v) for k, v in server.items()},
        "runs": runs,
        "ratio_reserve_settle_over_incr": round(ratio, 3),
    }
    print(
        f"\n{args.processes} processes x {args.threads} threads, {args.caps} cap(s) per "
        f"reservation, Redis {info.get('redis_version')} "
        f"({'shared: other clients count in its CPU figures' if shared else 'of its own'})"
    )
    print(f"  plain INCR                 {incr:>12,.0f} ops/s")
    print(f"  reserve + settle (1 call)  {reserve:>12,.0f} ops/s")
    print(f"  ratio                      {ratio:>12.3f}")
    usec = report["redis_cpu_us_per_op"]
    print(
        f"  Redis CPU per operation    INCR {usec['incr']:.2f} us, reserve + settle "
        f"{usec['reserve_settle']:.2f} us (two scripts)"
    )
    met = "met" if usec["reserve_settle"] <= GOAL_US else "NOT met"
    print(f"goal: Redis CPU per capped call <= {GOAL_US:.0f} us: {met}")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main()
