"""Workflow graphs against plain Celery: same Redis, same worker processes, same run.

    python bench/graphs.py [--items 1000] [--repeat 3] [--processes 2] [--concurrency 4]

What runs (see docs/performance.md, "Workflow graphs"):

- a fresh PostgreSQL database and Redis key prefix of this run's own (both removed at the end);
  ``--processes`` real ``agentyard worker bench.graphs_team:orc --all-agents --coordinator``
  processes on the threads pool, each also consuming ``bench.graphs`` (bench/graphs_team.py);
- (1) fan-out: a workflow fanning out over ``--items`` lines at zero model latency, then one
  step on the joined text, against a Celery group of as many no-op tasks followed by one task
  (each counts itself done with INCR; the last one sends the final task: the fan-in a Redis
  chord does, with no result backend). Time from the first submit to the last task's finish,
  read from the workers' clocks; ``--repeat`` rounds, both back to back, taking turns to go
  first; the ratio reported (Celery's time / agentyard's: agentyard's share of Celery's speed)
  is the median of the rounds' ratios;
- (2) coordinator CPU per branch: fan-outs of 10, 100 and 1000 items, the thread CPU time of
  every coordinator decision summed in the workers (``BENCH_DECIDE_CPU``) and divided by the
  branches; and the workers' whole CPU per branch. Flat is the goal: no decision reads every
  branch (only the join, once);
- (3) a 20-iteration loop of two agents (40 steps) against a 40-step sequence of the same two
  agents: time per step of each, and their ratio.

Prints a table and writes bench/results/graphs.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.harness import (  # noqa: E402  (needs the path set above)
    add_server_options,
    bench_run,
    start_workers,
    worker_processes,
)
from bench.overhead import cpu_delta, cpu_snapshot  # noqa: E402

RESULTS = ROOT / "bench" / "results"
SIZES = (10, 100, 1000)


def _parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--items", type=int, default=1000, help="branches of the fan-out in (1)")
    p.add_argument("--repeat", type=int, default=3, help="rounds of (1) and (3)")
    p.add_argument("--processes", type=int, default=2, help="worker processes")
    p.add_argument("--concurrency", type=int, default=4, help="threads per worker process")
    p.add_argument("--loglevel", default="WARNING", help="of the workers")
    add_server_options(p)
    p.add_argument("--keep-db", action="store_true", help="do not drop the bench database")
    p.add_argument("--output", type=Path, default=RESULTS / "graphs.json")
    return p.parse_args()


def _wait_run(orc: Any, run_id: str, timeout_s: float) -> float:
    """The run's finish time (epoch seconds, the worker's clock); it must have succeeded."""
    result = orc.run(run_id).wait(timeout=timeout_s, poll_s=0.02)
    if result.status.value != "succeeded":
        raise RuntimeError(f"bench run {run_id} ended {result.status.value}: {result.error}")
    assert result.finished_at is not None
    return float(result.finished_at.timestamp())


def _fan_out(orc: Any, team: Any, items: int) -> tuple[float, float]:
    """Seconds from submit to the end of a fan-out of ``items`` and the step after it, and the
    CPU seconds the submit took here (the run's first decision: every branch made and sent)."""
    text = "\n".join(f"item {n}" for n in range(items))
    started, cpu = time.time(), time.thread_time()
    run = orc.submit(team.FAN_OUT, text)
    submit_cpu = time.thread_time() - cpu
    return _wait_run(orc, run.id, timeout_s=600) - started, submit_cpu


def _celery_group(team: Any, redis: Any, prefix: str, items: int, tag: str) -> float:
    """Seconds from sending a group of ``items`` no-op tasks to the end of the task after it."""
    from celery import group

    latch = f"{prefix}bench:latch:{tag}"
    started = time.time()
    group(team.noop.si(latch=latch, of=items) for _ in range(items)).apply_async()
    deadline = time.monotonic() + 600
    while (done := redis.lindex(f"{latch}:done", 0)) is None:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the Celery group {tag} did not finish")
        time.sleep(0.02)
    return float(done) - started


def _steps(orc: Any, workflow: str, tag: str) -> float:
    """Seconds per step of one run of ``workflow`` (40 steps)."""
    started = time.time()
    run = orc.submit(workflow, f"bench input {tag}")
    elapsed = _wait_run(orc, run.id, timeout_s=300) - started
    return elapsed / (2 * 20)


def main() -> int:
    args = _parse()
    import os

    import redis

    env_base = {
        "AGENTYARD_REDIS_URL": args.redis_url,
        "AGENTYARD_LOG_LEVEL": args.loglevel,
        "AGENTYARD_LOG_FORMAT": "json",
        "BENCH_DECIDE_CPU": "1",
    }
    with bench_run(args.postgres_url, args.redis_url, stem="graphs", keep_db=args.keep_db) as run:
        env = {
            **env_base,
            "AGENTYARD_DATABASE_URL": run.database_url,
            "AGENTYARD_REDIS_KEY_PREFIX": run.prefix,
        }
        os.environ.update(env)
        import bench.graphs_team as team

        orc = team.orc
        client = redis.Redis.from_url(args.redis_url, decode_responses=True)
        workers = worker_processes(
            "bench.graphs_team:orc",
            ["--all-agents", "--coordinator"],
            count=args.processes,
            concurrency=args.concurrency,
            loglevel=args.loglevel,
            name="graphs",
            env=env,
            logs=RESULTS / "logs",
        )
        run.workers.extend(workers)
        start_workers(orc, workers, ["coordinator", "agent.summarizer", team.QUEUE])
        pids = [worker.pid for worker in workers]
        print(
            f"bench run {run.id}: {args.processes} worker process(es) x {args.concurrency} threads"
        )
        print("warm-up...")
        _fan_out(orc, team, 50)
        _steps(orc, team.SEQUENCE, "warm")
        _celery_group(team, client, run.prefix, 50, "warm")
        _steps(orc, team.LOOP, "warm")

        report: dict[str, Any] = {
            "started_at": datetime.now(UTC).isoformat(),
            "args": {**vars(args), "output": str(args.output)},
        }

        print(f"(1) a fan-out of {args.items} against a Celery group of {args.items} and one task")
        rounds = []
        for n in range(args.repeat):
            order = ("celery", "agentyard") if n % 2 == 0 else ("agentyard", "celery")
            times: dict[str, float] = {}
            for side in order:
                if side == "celery":
                    times[side] = _celery_group(team, client, run.prefix, args.items, f"r{n}")
                else:
                    times[side] = _fan_out(orc, team, args.items)[0]
            ratio = times["celery"] / times["agentyard"]
            rounds.append({**times, "ratio": round(ratio, 3)})
            print(
                f"  round {n + 1} ({order[0]} first): celery {times['celery']:.2f}s, "
                f"agentyard {times['agentyard']:.2f}s, ratio {ratio:.3f}"
            )
        report["fan_out"] = {
            "items": args.items,
            "rounds": rounds,
            "ratio_median": round(statistics.median(r["ratio"] for r in rounds), 3),
            "celery_s_median": round(statistics.median(r["celery"] for r in rounds), 3),
            "agentyard_s_median": round(statistics.median(r["agentyard"] for r in rounds), 3),
        }

        print("(2) coordinator CPU per branch")
        per_size = []
        for size in SIZES:
            client.delete(f"{run.prefix}bench:decide_cpu_us", f"{run.prefix}bench:decides")
            before = cpu_snapshot(pids)
            elapsed, submit_cpu = _fan_out(orc, team, size)
            cpu = cpu_delta(before, cpu_snapshot(pids))
            # the first decision is made in the submit, here; the others in the workers
            decide_us = int(client.get(f"{run.prefix}bench:decide_cpu_us") or 0)
            decide_us += int(submit_cpu * 1e6)
            decides = int(client.get(f"{run.prefix}bench:decides") or 0) + 1
            row = {
                "branches": size,
                "elapsed_s": round(elapsed, 3),
                "decisions": decides,
                "coordinator_cpu_ms_per_branch": round(decide_us / 1000 / size, 3),
                "coordinator_cpu_ms_per_decision": round(decide_us / 1000 / max(decides, 1), 3),
                "worker_cpu_ms_per_branch": round(cpu.get("workers", 0.0) * 1000 / size, 3),
            }
            per_size.append(row)
            print(
                f"  {size:>5} branches: coordinator {row['coordinator_cpu_ms_per_branch']:.3f} "
                f"ms/branch ({decides} decisions), workers {row['worker_cpu_ms_per_branch']:.2f} "
                f"ms/branch, {elapsed:.2f}s"
            )
        report["coordinator_cpu"] = per_size

        print("(3) a 20-iteration loop against a 40-step sequence, per step")
        loop_rounds = []
        for n in range(args.repeat):
            order = (team.LOOP, team.SEQUENCE) if n % 2 == 0 else (team.SEQUENCE, team.LOOP)
            per_step = {workflow: _steps(orc, workflow, f"r{n}") for workflow in order}
            loop_ms, seq_ms = per_step[team.LOOP] * 1000, per_step[team.SEQUENCE] * 1000
            loop_rounds.append(
                {
                    "loop_ms_per_step": round(loop_ms, 2),
                    "sequence_ms_per_step": round(seq_ms, 2),
                    "ratio": round(loop_ms / seq_ms, 3),
                }
            )
            print(
                f"  round {n + 1}: loop {loop_ms:.2f} ms/iteration-step, sequence {seq_ms:.2f} "
                f"ms/step, loop/sequence {loop_ms / seq_ms:.3f}"
            )
        report["loop_vs_sequence"] = {
            "rounds": loop_rounds,
            "ratio_median": round(statistics.median(r["ratio"] for r in loop_rounds), 3),
        }
        _print(report)
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.output}")
    return 0


def _print(report: dict[str, Any]) -> None:
    fan = report["fan_out"]
    print()
    print(
        f"fan-out of {fan['items']}: agentyard {fan['agentyard_s_median']:.2f}s, Celery group + "
        f"one task {fan['celery_s_median']:.2f}s; agentyard at {fan['ratio_median']:.3f} of "
        "Celery's speed (median of the rounds' ratios)"
    )
    flat = [row["coordinator_cpu_ms_per_branch"] for row in report["coordinator_cpu"]]
    print(
        "coordinator CPU per branch, ms: "
        + ", ".join(
            f"{row['branches']}: {row['coordinator_cpu_ms_per_branch']:.3f}"
            for row in report["coordinator_cpu"]
        )
        + f" (largest / smallest {max(flat) / max(min(flat), 1e-9):.2f})"
    )
    print(
        f"loop per iteration-step / sequence per step: "
        f"{report['loop_vs_sequence']['ratio_median']:.3f} (median of the rounds)"
    )


if __name__ == "__main__":
    raise SystemExit(main())
