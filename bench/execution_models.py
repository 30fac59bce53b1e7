"""The model call alone under two execution models: threads with the SDK's client, against one
event loop with its async client.

    python bench/execution_models.py [--levels 64,256,1024] [--latency 1.0] [--seconds 10]

For each level N, in a process of its own (so that its CPU is its own), N callers make
``messages.create`` calls back to back through the real ``anthropic`` SDK over real HTTP, to the
stub server on asyncio (a process of its own) answering each after ``--latency`` seconds:

- ``threads``: N threads sharing one ``Anthropic`` client (what a threads-pool worker does);
- ``asyncio``: N tasks on one event loop sharing one ``AsyncAnthropic`` client.

Printed per level and model: calls/s against the ideal (N / latency) and the process's CPU per
call. No database, no broker, no agentyard: this bounds what an event loop could save on the
call itself, the part of a step that waits on the network (the claim and the record around it
are the rest). Writes bench/results/execution_models.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.harness import write_results  # noqa: E402  (needs the path set above)
from bench.inflight import stub_process  # noqa: E402

RESULTS = ROOT / "bench" / "results"
MODELS = ("threads", "asyncio")
REQUEST: dict[str, Any] = {
    "model": "claude-haiku-4-5",
    "max_tokens": 64,
    "messages": [{"role": "user", "content": "Say hello."}],
}


def _parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--levels", default="64,256,1024", help="callers at once")
    p.add_argument("--latency", type=float, default=1.0, help="the stub's answer time, seconds")
    p.add_argument("--seconds", type=float, default=10.0, help="measured, after one latency")
    p.add_argument("--output", type=Path, default=RESULTS / "execution_models.json")
    p.add_argument("--child", choices=MODELS, help=argparse.SUPPRESS)
    p.add_argument("--url", help=argparse.SUPPRESS)
    p.add_argument("--callers", type=int, help=argparse.SUPPRESS)
    return p.parse_args()


# -- in the child process ------------------------------------------------------------------------


def _threads(url: str, callers: int, warmup_s: float, seconds: float) -> tuple[int, float]:
    from anthropic import Anthropic

    client = Anthropic(base_url=url, api_key="sk-bench", max_retries=0, timeout=60)
    counted = [0]
    lock = threading.Lock()
    window = [0.0, 0.0]
    stop = time.monotonic() + warmup_s + seconds

    def caller() -> None:
        while time.monotonic() < stop:
            client.messages.create(**REQUEST)
            now = time.monotonic()
            if window[0] <= now <= window[1]:
                with lock:
                    counted[0] += 1

    threads = [threading.Thread(target=caller, daemon=True) for _ in range(callers)]
    for thread in threads:
        thread.start()
    time.sleep(warmup_s)
    window[:] = [time.monotonic(), time.monotonic() + seconds]
    cpu = time.process_time()
    time.sleep(seconds)
    cpu = time.process_time() - cpu
    for thread in threads:
        thread.join()
    return counted[0], cpu


def _asyncio(url: str, callers: int, warmup_s: float, seconds: float) -> tuple[int, float]:
    from anthropic import AsyncAnthropic

    async def run() -> tuple[int, float]:
        client = AsyncAnthropic(base_url=url, api_key="sk-bench", max_retries=0, timeout=60)
        counted = 0
        window = [0.0, 0.0]
        stop = time.monotonic() + warmup_s + seconds

        async def caller() -> None:
            nonlocal counted
            while time.monotonic() < stop:
                await client.messages.create(**REQUEST)
                if window[0] <= time.monotonic() <= window[1]:
                    counted += 1

        tasks = [asyncio.create_task(caller()) for _ in range(callers)]
        await asyncio.sleep(warmup_s)
        window[:] = [time.monotonic(), time.monotonic() + seconds]
        cpu = time.process_time()
        await asyncio.sleep(seconds)
        cpu = time.process_time() - cpu
        await asyncio.gather(*tasks)
        await client.close()
        return counted, cpu

    return asyncio.run(run())


def child(args: argparse.Namespace) -> None:
    run = _threads if args.child == "threads" else _asyncio
    calls, cpu = run(args.url, args.callers, args.latency + 1.0, args.seconds)
    print(json.dumps({"calls": calls, "cpu_s": cpu}))


# -- the driver ----------------------------------------------------------------------------------


def one(model: str, callers: int, url: str, args: argparse.Namespace) -> dict[str, Any]:
    done = subprocess.run(
        [
            sys.executable,
            __file__,
            "--child",
            model,
            "--url",
            url,
            "--callers",
            str(callers),
            "--latency",
            str(args.latency),
            "--seconds",
            str(args.seconds),
        ],
        capture_output=True,
        text=True,
        timeout=args.seconds + 5 * args.latency + 120,
        check=True,
    )
    measured = json.loads(done.stdout.strip().splitlines()[-1])
    calls_per_s = measured["calls"] / args.seconds
    ideal = callers / args.latency
    return {
        "model": model,
        "callers": callers,
        "calls_per_s": round(calls_per_s, 1),
        "of_ideal": round(calls_per_s / ideal, 3),
        "cpu_ms_per_call": round(measured["cpu_s"] * 1000 / max(measured["calls"], 1), 2),
    }


def main() -> int:
    args = _parse()
    if args.child:
        child(args)
        return 0
    levels = [int(level) for level in args.levels.split(",")]
    logs = RESULTS / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    rows = []
    with stub_process(args.latency, logs) as (url, _pid):
        for callers in levels:
            for model in MODELS:
                row = one(model, callers, url, args)
                rows.append(row)
                print(
                    f"{callers:>6} callers, {model:8}: {row['calls_per_s']:>7.1f} calls/s "
                    f"({row['of_ideal']:.0%} of ideal), {row['cpu_ms_per_call']:.2f} ms CPU a call"
                )
    print(f"\nthe SDK's call alone, stub answering in {args.latency:g} s, {os.cpu_count()} cores:")
    print("| callers | model | calls/s | of ideal | CPU ms per call |")
    print("| --- | --- | --- | --- | --- |")
    for row in rows:
        print(
            f"| {row['callers']} | {row['model']} | {row['calls_per_s']} | "
            f"{row['of_ideal']:.0%} | {row['cpu_ms_per_call']} |"
        )
    write_results(args.output, args, rows=rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
