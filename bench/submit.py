"""How fast one process enqueues runs: ``orc.submit_many`` against a loop of ``orc.submit``.

    python bench/submit.py [--runs 2000] [--batch 1000] [--rounds 3]

Each round, in one process, on this machine's PostgreSQL and Redis (a database and key prefix
of the run's own), the one-step workflow of ``bench/first_calls_team.py``:

- a loop of ``orc.submit``, ``--runs`` / 4 runs (it is the slow side);
- ``orc.submit_many`` in batches of ``--batch``, ``--runs`` runs.

No worker runs: what is measured is recording each run with its first decision and sending its
first request to the broker. Prints runs per second of each, their ratio (the median of the
rounds), and writes bench/results/submit.json. The goal: 2 000 runs/s or more from submit_many.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.harness import (  # noqa: E402  (needs the path set above)
    add_server_options,
    bench_run,
    write_results,
)

RESULTS = ROOT / "bench" / "results"
GOAL_RUNS_PER_S = 2000


def _parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--runs", type=int, default=2000, help="runs submit_many enqueues a round")
    p.add_argument("--batch", type=int, default=1000, help="inputs per submit_many call")
    p.add_argument("--rounds", type=int, default=3)
    add_server_options(p)
    p.add_argument("--output", type=Path, default=RESULTS / "submit.json")
    return p.parse_args()


def one_round(orc: Any, args: argparse.Namespace, number: int) -> dict[str, float]:
    loop_runs = max(1, args.runs // 4)
    clock = time.perf_counter()
    for n in range(loop_runs):
        orc.submit("answer", f"round {number} loop {n}")
    loop_s = time.perf_counter() - clock

    inputs = [f"round {number} many {n}" for n in range(args.runs)]
    clock = time.perf_counter()
    for start in range(0, len(inputs), args.batch):
        orc.submit_many("answer", inputs[start : start + args.batch])
    many_s = time.perf_counter() - clock
    return {
        "submit_runs_per_s": round(loop_runs / loop_s, 1),
        "submit_many_runs_per_s": round(args.runs / many_s, 1),
    }


def main() -> int:
    args = _parse()
    rounds: list[dict[str, float]] = []
    with bench_run(args.postgres_url, args.redis_url, stem="submit") as run:
        os.environ.update(run.settings(args.redis_url))
        import importlib

        orc = importlib.import_module("bench.first_calls_team").orc
        orc.ensure_ready()
        orc.submit("answer", "warm-up")  # connections opened, statements prepared
        for number in range(args.rounds):
            result = one_round(orc, args, number)
            result["ratio"] = round(
                result["submit_many_runs_per_s"] / result["submit_runs_per_s"], 1
            )
            rounds.append(result)
            print(
                f"round {number + 1}: submit {result['submit_runs_per_s']:7.1f} runs/s, "
                f"submit_many {result['submit_many_runs_per_s']:7.1f} runs/s, "
                f"{result['ratio']:.1f}x",
                flush=True,
            )
        orc.close()

    summary = {
        key: statistics.median(r[key] for r in rounds)
        for key in ("submit_runs_per_s", "submit_many_runs_per_s", "ratio")
    }
    met = summary["submit_many_runs_per_s"] >= GOAL_RUNS_PER_S
    print()
    print(f"one process, batches of {args.batch}, median of {args.rounds} rounds")
    print(f"  loop of orc.submit:  {summary['submit_runs_per_s']:8.1f} runs/s")
    print(
        f"  orc.submit_many:     {summary['submit_many_runs_per_s']:8.1f} runs/s  "
        f"({summary['ratio']:.1f}x)"
    )
    print(f"goal {GOAL_RUNS_PER_S} runs/s from submit_many: {'met' if met else 'NOT met'}")
    write_results(args.output, args, rounds=rounds, summary=summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
