"""How many model calls one node keeps in flight: the in-flight curve.

    python bench/inflight.py [--levels 16,64,256,512,1024] [--latency 1.0] [--processes 2]

What runs, for each level N (a database and Redis key prefix of its own each time):

- single-step workflows (``bench/first_calls_team.py``'s agent, ``claude-haiku-4-5``) enqueued
  with ``orc.submit_many`` before any worker starts: enough to keep N calls in flight through
  the ramp and the window at the ideal rate;
- the stub server in a process of its own, on asyncio (``agentyard stub-anthropic --asyncio``),
  answering every call after ``--latency`` seconds, through the real SDK over real HTTP;
- one node of this machine: one coordinator worker, and ``--processes`` agent worker processes
  on the threads pool, N threads among them (``--concurrency`` N / processes each);
- after ``--ramp`` seconds from the first answer, a window of ``--window`` seconds, sampled
  every 0.2 s: the calls in flight the stub saw (median over the window), the calls it answered
  per second against the ideal (N / latency), CPU per call (agent workers, coordinator,
  PostgreSQL, Redis, the stub, the whole machine), and the agent workers' resident memory.

Prints a table, where the curve bends (the first level under 90 % of ideal), and writes
bench/results/inflight.json. The goal: 256 in flight at 90 % of ideal or better.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import math
import os
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.harness import (  # noqa: E402  (needs the path set above)
    add_server_options,
    bench_run,
    free_port,
    process_cpu_s,
    rss_mb,
    worker_processes,
    write_results,
)
from bench.overhead import cpu_snapshot  # noqa: E402

RESULTS = ROOT / "bench" / "results"
TEAM = "bench.first_calls_team:orc"
GOAL_LEVEL, GOAL_SHARE = 256, 0.9
SAMPLE_S = 0.2


def _parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--levels", default="16,64,256,512,1024", help="calls in flight to try")
    p.add_argument("--latency", type=float, default=1.0, help="the stub's answer time, seconds")
    p.add_argument("--processes", type=int, default=2, help="agent worker processes")
    p.add_argument("--ramp", type=float, default=4.0, help="seconds from the first answer")
    p.add_argument("--window", type=float, default=10.0, help="seconds measured")
    p.add_argument("--timeout", type=float, default=60.0, help="the agent's deadline, seconds")
    add_server_options(p)
    p.add_argument("--output", type=Path, default=RESULTS / "inflight.json")
    return p.parse_args()


@contextlib.contextmanager
def stub_process(latency_s: float, logs: Path) -> Iterator[tuple[str, int]]:
    """The asyncio stub in a process of its own: (its base URL, its pid)."""
    port = free_port()
    logs.mkdir(parents=True, exist_ok=True)
    with (logs / "inflight-stub.log").open("w") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "orchestration.cli",
                "stub-anthropic",
                "--asyncio",
                "--port",
                str(port),
                "--latency",
                str(latency_s),
            ],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                _stats(url)
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the stub did not start; see its log") from None
                time.sleep(0.05)
        yield url, process.pid
    finally:
        process.terminate()
        process.wait(timeout=15)


def _stats(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{url}/_stub/stats", timeout=5) as response:
        return dict(json.loads(response.read()))


def _reset(url: str) -> None:
    request = urllib.request.Request(f"{url}/_stub/reset", data=b"{}", method="POST")
    with urllib.request.urlopen(request, timeout=5):
        pass


def _extra_cpu(coordinator_pid: int, stub_pid: int) -> dict[str, float]:
    """CPU seconds so far of the two processes ``cpu_snapshot`` does not count."""
    return {"coordinator": process_cpu_s(coordinator_pid), "stub": process_cpu_s(stub_pid)}


def one_level(
    level: int, args: argparse.Namespace, stub_url: str, stub_pid: int, logs: Path
) -> dict[str, Any]:
    runs = math.ceil(level * (args.ramp + args.window + 4) / args.latency)
    with bench_run(args.postgres_url, args.redis_url, stem="inflight") as run:
        env = run.settings(
            args.redis_url,
            AGENTYARD_ANTHROPIC_BASE_URL=stub_url,
            AGENTYARD_ANTHROPIC_API_KEY="sk-bench",
            BENCH_TIMEOUT_S=str(args.timeout),
        )
        os.environ.update(env)
        orc = importlib.reload(importlib.import_module("bench.first_calls_team")).orc
        orc.ensure_ready()
        clock = time.perf_counter()
        inputs = [f"in flight {level} {n}" for n in range(runs)]
        for start in range(0, runs, 1000):
            orc.submit_many("answer", inputs[start : start + 1000])
        submit_s = time.perf_counter() - clock
        _reset(stub_url)

        per_process = math.ceil(level / args.processes)
        coordinator = worker_processes(
            TEAM,
            ["--coordinator"],
            count=1,
            concurrency=4,
            loglevel="WARNING",
            name=f"coord{level}-",
            env=env,
            logs=logs,
        )
        agents = worker_processes(
            TEAM,
            ["--agents", "responder"],
            count=args.processes,
            concurrency=per_process,
            loglevel="WARNING",
            name=f"agents{level}-",
            env=env,
            logs=logs,
        )
        run.workers.extend([*coordinator, *agents])
        from workers.processes import wait_for_workers

        for worker in run.workers:
            worker.start()
        wait_for_workers(orc.celery, len(run.workers), timeout_s=120, processes=run.workers)
        agent_pids = [w.pid for w in agents]
        coordinator_pid = coordinator[0].pid

        deadline = time.monotonic() + 120
        while _stats(stub_url)["calls"] == 0:  # the first answer
            if time.monotonic() > deadline:
                raise RuntimeError(f"level {level}: no call answered within 120 s")
            time.sleep(0.05)
        time.sleep(args.ramp)

        before_stats, before_cpu = _stats(stub_url), cpu_snapshot(agent_pids)
        before_extra = {
            "coordinator": process_cpu_s(coordinator_pid),
            "stub": process_cpu_s(stub_pid),
        }
        began = time.monotonic()
        in_flight: list[int] = []
        rss: list[float] = []
        while time.monotonic() - began < args.window:
            in_flight.append(int(_stats(stub_url)["in_flight"]))
            rss.append(sum(rss_mb(pid) for pid in agent_pids))
            time.sleep(SAMPLE_S)
        took = time.monotonic() - began
        after_stats, after_cpu = _stats(stub_url), cpu_snapshot(agent_pids)
        after_extra = {
            "coordinator": process_cpu_s(coordinator_pid),
            "stub": process_cpu_s(stub_pid),
        }
        left = int(_stats(stub_url)["calls"])
        orc.close()

    calls = int(after_stats["calls"]) - int(before_stats["calls"])
    per_call = 1000 / max(calls, 1)  # ms of CPU per call, from seconds
    cpu = {k: (after_cpu[k] - before_cpu[k]) * per_call for k in after_cpu}
    cpu.update({k: (after_extra[k] - before_extra[k]) * per_call for k in after_extra})
    rate = calls / took
    ideal = level / args.latency
    statuses = after_stats["by_status"]
    return {
        "level": level,
        "runs_enqueued": runs,
        "submit_s": round(submit_s, 2),
        "threads_per_process": per_process,
        "in_flight_median": statistics.median(in_flight),
        "in_flight_max": int(after_stats["in_flight_max"]),
        "calls_per_s": round(rate, 1),
        "ideal_per_s": round(ideal, 1),
        "share_of_ideal": round(rate / ideal, 3),
        "cpu_ms_per_call": {k: round(v, 2) for k, v in cpu.items()},
        "agent_rss_mb": round(statistics.median(rss), 1),
        "statuses": statuses,
        "calls_answered_in_all": left,
    }


def main() -> int:
    args = _parse()
    levels = [int(level) for level in args.levels.split(",") if level]
    logs = RESULTS / "logs"
    results: list[dict[str, Any]] = []
    with stub_process(args.latency, logs) as (stub_url, stub_pid):
        for level in levels:
            result = one_level(level, args, stub_url, stub_pid, logs)
            results.append(result)
            cpu = result["cpu_ms_per_call"]
            print(
                f"{level:5d} wanted: {result['in_flight_median']:7.1f} in flight (median), "
                f"{result['calls_per_s']:7.1f} calls/s of {result['ideal_per_s']:.0f} "
                f"({result['share_of_ideal']:.0%}), agent workers {cpu['workers']:.1f} ms CPU "
                f"a call, {result['agent_rss_mb']:.0f} MB, {result['statuses']}",
                flush=True,
            )

    base = results[0]
    print()
    print(
        f"one node: 1 coordinator + {args.processes} agent worker processes (threads pool), "
        f"stub on asyncio answering in {args.latency:g} s, {os.cpu_count()} cores"
    )
    print(
        "| wanted in flight | seen (median) | calls/s | % of ideal | CPU ms/call: agent workers "
        "/ coordinator / postgres / redis / stub / machine | agent RSS MB | MB per extra call |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in results:
        cpu = r["cpu_ms_per_call"]
        extra = r["level"] - base["level"]
        slope = (r["agent_rss_mb"] - base["agent_rss_mb"]) / extra if extra else 0.0
        r["mb_per_extra_call"] = round(slope, 3)
        print(
            f"| {r['level']} | {r['in_flight_median']:.0f} | {r['calls_per_s']:.1f} | "
            f"{r['share_of_ideal']:.0%} | {cpu['workers']:.1f} / {cpu['coordinator']:.1f} / "
            f"{cpu['postgres']:.1f} / {cpu['redis']:.2f} / {cpu['stub']:.2f} / "
            f"{cpu['machine_busy']:.1f} | {r['agent_rss_mb']:.0f} | "
            f"{'-' if not extra else f'{slope:.2f}'} |"
        )
    bent = next((r["level"] for r in results if r["share_of_ideal"] < GOAL_SHARE), None)
    goal = next((r for r in results if r["level"] == GOAL_LEVEL), None)
    print(
        "the curve bends at "
        + (f"{bent} in flight (under 90 % of ideal)" if bent else "none of these levels")
    )
    if goal is not None:
        met = goal["share_of_ideal"] >= GOAL_SHARE
        print(
            f"goal {GOAL_LEVEL} in flight at 90 % of ideal: {'met' if met else 'NOT met'} "
            f"({goal['share_of_ideal']:.0%})"
        )
    write_results(args.output, args, cores=os.cpu_count(), levels=results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
