"""agentyard's overhead against plain Celery: same Redis, same worker processes, same run.

    python bench/overhead.py [--workflows 200] [--runs 20] [--processes 2] [--concurrency 4]

What runs (see docs/performance.md):

- a fresh PostgreSQL database and a fresh Redis key prefix of this run's own (both removed at the
  end), full durability on: the app's defaults (acks late, reject on worker lost, prefetch 1, the
  audit/outbox rows in PostgreSQL);
- ``--processes`` real ``agentyard worker bench.overhead_team:orc --all-agents --coordinator``
  processes on the threads pool; each also consumes ``bench.noop`` (bench/overhead_team.py);
- throughput: N five-step sequence workflows on ``offline:echo`` (zero model latency) submitted
  at once, against N ``celery.chain`` of five ``bench.noop`` tasks submitted at once;
  steps/s = 5N / (finish of the last one - start of the first submit);
- latency at light load: ``--runs`` workflows one at a time, against as many chains one at a
  time; per-step latency = (finish - submit) / 5, finish read from the worker's own clock (the
  workflow's ``finished_at``; the time the chain's last task wrote to Redis), so polling does not
  blur it;
- per step, what the servers saw during each throughput phase, from their own statistics:
  PostgreSQL transactions (``pg_stat_database`` of the bench database), Redis commands (INFO
  commandstats), broker messages (pushes onto queues) and task events (PUBLISH), the driver's
  polls taken out; with ``--instrument``, the SQL statements the workers ran, per step.

Prints a table and writes bench/results/overhead.json.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import platform
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
    CLOCK_TICKS_PER_S,
    add_server_options,
    bench_run,
    process_cpu_s,
    start_workers,
    worker_processes,
)

RESULTS = ROOT / "bench" / "results"
STEPS = 5
GOAL_RATIO = 0.5
FLOOR = "celery+storage"  # the --floor workload's name


def _parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--workflows", type=int, default=200, help="N for the throughput phase")
    p.add_argument(
        "--repeat",
        type=int,
        default=5,
        help="throughput rounds, each measuring both workloads back to back (which goes first "
        "alternates); the ratio reported is the median of the rounds' ratios",
    )
    p.add_argument("--runs", type=int, default=20, help="sequential runs for the latency phase")
    p.add_argument(
        "--warmup", type=int, default=10, help="workflows and chains run first, unmeasured"
    )
    p.add_argument("--processes", type=int, default=2, help="worker processes")
    p.add_argument("--concurrency", type=int, default=4, help="threads per worker process")
    p.add_argument("--loglevel", default="INFO", help="of the workers (Celery and agentyard)")
    add_server_options(p)
    p.add_argument("--keep-db", action="store_true", help="do not drop the bench database")
    p.add_argument(
        "--instrument",
        action="store_true",
        help="count DB round trips, commits and broker sends per task in the workers "
        "(adds a little overhead; prints a breakdown)",
    )
    p.add_argument(
        "--cprofile",
        action="store_true",
        help="with --instrument: cProfile every task body on the thread CPU clock "
        "(bench/results/logs/cprofile-<phase>-<task>-<pid>.pstats)",
    )
    p.add_argument(
        "--py-spy",
        action="store_true",
        help="sample the workers with py-spy during the agentyard throughput phase "
        "(collapsed stacks in bench/results/logs/py-spy-<pid>.txt)",
    )
    p.add_argument(
        "--floor",
        action="store_true",
        help="a third workload: chains of plain Celery tasks that each do a step's storage work "
        "(the same kinds of statements, transactions and Redis script) without agentyard's "
        "logic (bench/durable_floor.py): the most a durable step could reach here",
    )
    p.add_argument("--output", type=Path, default=RESULTS / "overhead.json")
    return p.parse_args()


# -- the two workloads -------------------------------------------------------------------------


class Agentyard:
    """N five-step sequence workflows through the coordinator and five agent queues."""

    label = "agentyard"

    def __init__(self, team: Any) -> None:
        self.orc = team.orc
        self.workflow = team.WORKFLOW
        self.driver_counts = {"pg_transactions": 0, "redis_commands": 0}  # its polls

    def submit(self, tag: str) -> str:
        return self.orc.submit(self.workflow, f"bench input {tag}").id

    def finished(self, ids: list[str]) -> dict[str, float]:
        """``{id: finished_at as epoch seconds}`` of the runs among ``ids`` that have finished."""
        from sqlmodel import col, select

        from storage.db import session_scope
        from storage.models import WorkflowRow

        self.driver_counts["pg_transactions"] += 1
        with session_scope(self.orc.database_url) as session:
            rows = session.exec(
                select(WorkflowRow.id, WorkflowRow.status, WorkflowRow.finished_at).where(
                    col(WorkflowRow.id).in_(ids), col(WorkflowRow.finished_at).is_not(None)
                )
            ).all()
        failed = [i for i, status, _ in rows if status != "succeeded"]
        if failed:
            raise RuntimeError(f"{len(failed)} bench workflow(s) failed, e.g. {failed[0]}")
        return {i: finished.timestamp() for i, _, finished in rows}


class PlainCelery:
    """N ``celery.chain`` of five ``bench.noop``; the last task records its finish time."""

    label = "celery"

    def __init__(self, team: Any, redis_url: str, prefix: str) -> None:
        import redis
        from celery import chain

        self._chain = chain
        self._noop = team.noop
        self._redis = redis.Redis.from_url(redis_url, decode_responses=True)
        self._prefix = prefix
        self.driver_counts = {"pg_transactions": 0, "redis_commands": 0}  # its polls

    def submit(self, tag: str) -> str:
        mark = f"{self._prefix}bench:done:{tag}"
        tasks = [self._noop.si() for _ in range(STEPS - 1)] + [self._noop.si(mark=mark)]
        self._chain(*tasks).apply_async()
        return mark

    def finished(self, ids: list[str]) -> dict[str, float]:
        self.driver_counts["redis_commands"] += len(ids)
        pipe = self._redis.pipeline(transaction=False)
        for mark in ids:
            pipe.lindex(mark, 0)
        return {
            mark: float(t) for mark, t in zip(ids, pipe.execute(), strict=True) if t is not None
        }


class CeleryWithStorage(PlainCelery):
    """N chains of five ``bench.floor`` tasks, each a step's storage work without agentyard's
    logic; submitting writes the run's rows in one transaction, as ``orc.submit`` does."""

    label = "celery+storage"

    def __init__(self, team: Any, redis_url: str, prefix: str, database_url: str) -> None:
        from bench import durable_floor

        super().__init__(team, redis_url, prefix)
        self._floor_task = team.floor_step
        self._floor = durable_floor
        self._database_url = database_url
        durable_floor.create_tables(database_url)

    def submit(self, tag: str) -> str:
        mark = f"{self._prefix}bench:floor-done:{tag}"
        workflow_id = f"floor-{tag}"
        self._floor.submit(self._database_url, workflow_id, f"bench input {tag}")
        tasks = [self._floor_task.si(workflow_id, i) for i in range(STEPS - 1)]
        tasks.append(self._floor_task.si(workflow_id, STEPS - 1, mark=mark))
        self._chain(*tasks).apply_async()
        return mark


def _wait(workload: Any, ids: list[str], timeout_s: float, poll_s: float) -> dict[str, float]:
    deadline = time.monotonic() + timeout_s
    done: dict[str, float] = {}
    pending = list(ids)
    while pending:
        # Only ask about what is still pending (in slices: an IN list of hundreds is fine).
        for start in range(0, len(pending), 500):
            done |= workload.finished(pending[start : start + 500])
        pending = [i for i in pending if i not in done]
        if not pending:
            break
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"{workload.label}: {len(pending)} of {len(ids)} unfinished after {timeout_s}s"
            )
        time.sleep(poll_s)
    return done


class ServerCounts:
    """What the servers did, read from their own statistics: Redis's commands (INFO
    commandstats: every command, the pushes onto queues, the event PUBLISHes) and the bench
    database's transactions (pg_stat_database, which a backend reports within a second of its
    transaction: ``read`` waits for that)."""

    def __init__(self, redis_url: str, database_url: str) -> None:
        import redis
        from sqlalchemy import create_engine

        self._redis = redis.Redis.from_url(redis_url)
        self._engine = create_engine(database_url, pool_size=1)
        self._database = self._engine.url.database

    def read(self) -> dict[str, int]:
        from sqlalchemy import text

        stats = self._redis.info("commandstats")
        calls = {name.removeprefix("cmdstat_"): int(row["calls"]) for name, row in stats.items()}
        cpu = self._redis.info("cpu")
        with self._engine.connect() as connection:
            connection.execute(text("SELECT pg_stat_force_next_flush()"))
            connection.execute(text("SELECT pg_stat_clear_snapshot()"))
            commits, rollbacks = connection.execute(
                text("SELECT xact_commit, xact_rollback FROM pg_stat_database WHERE datname = :d"),
                {"d": self._database},
            ).one()
        return {
            "redis_commands": sum(n for name, n in calls.items() if name != "info"),
            "queue_pushes": calls.get("lpush", 0) + calls.get("rpush", 0),
            "event_publishes": calls.get("publish", 0),
            "pg_transactions": int(commits) + int(rollbacks),
            # this Redis server's own CPU (its main thread and the rest), in microseconds
            "redis_cpu_us": round(
                (float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])) * 1_000_000
            ),
        }

    def close(self) -> None:
        self._redis.close()
        self._engine.dispose()


def throughput(
    workload: Any,
    n: int,
    tag: str,
    timeout_s: float,
    worker_pids: list[int] | None = None,
    servers: ServerCounts | None = None,
) -> dict[str, Any]:
    counts_before = servers.read() if servers else {}
    driver_before = dict(getattr(workload, "driver_counts", {}))
    cpu_before = cpu_snapshot(worker_pids or [])
    started = time.time()
    ids = [workload.submit(f"{tag}-{i}") for i in range(n)]
    submitted = time.time()
    done = _wait(workload, ids, timeout_s, poll_s=0.05)
    elapsed = max(done.values()) - started
    cpu = cpu_delta(cpu_before, cpu_snapshot(worker_pids or []))
    per_step: dict[str, float] = {}
    if servers:
        time.sleep(1.5)  # backends report their transactions' statistics within a second
        after = servers.read()
        # Not the steps': the driver's polls, and the transaction of the first reading.
        driver = getattr(workload, "driver_counts", {})
        own = {key: driver[key] - driver_before[key] for key in driver}
        own["pg_transactions"] = own.get("pg_transactions", 0) + 1
        per_step = {
            key: round((after[key] - counts_before[key] - own.get(key, 0)) / (STEPS * n), 2)
            for key in after
        }
    return {
        "workflows": n,
        "steps": STEPS * n,
        "submit_s": round(submitted - started, 3),
        "elapsed_s": round(elapsed, 3),
        "steps_per_s": round(STEPS * n / elapsed, 1),
        # CPU seconds spent during the phase (to the last poll), by process group, and per step.
        "cpu_s": cpu,
        "cpu_ms_per_step": {k: round(v * 1000 / (STEPS * n), 2) for k, v in cpu.items()},
        # Commands and transactions the servers saw during the phase, per step (the driver's
        # polls taken out; other clients of the same Redis or database would count too).
        "server_counts_per_step": per_step,
    }


def cpu_snapshot(worker_pids: list[int]) -> dict[str, float]:
    """CPU seconds so far of: the workers, every postgres and redis-server process, this driver,
    and the machine (all cores, busy time). Linux only; empty elsewhere."""
    if not Path("/proc/stat").exists():
        return {}
    groups = {"workers": 0.0, "postgres": 0.0, "redis": 0.0}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            comm = (entry / "comm").read_text().strip()
        except OSError:
            continue
        if comm == "postgres":
            groups["postgres"] += process_cpu_s(int(entry.name))
        elif comm == "redis-server":
            groups["redis"] += process_cpu_s(int(entry.name))
    groups["workers"] = sum(process_cpu_s(pid) for pid in worker_pids)
    groups["driver"] = process_cpu_s(os.getpid())
    cpu = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    busy = sum(int(v) for v in cpu[:8]) - int(cpu[3]) - int(cpu[4])  # minus idle and iowait
    groups["machine_busy"] = busy / CLOCK_TICKS_PER_S
    return groups


def cpu_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {k: round(after[k] - before.get(k, 0.0), 2) for k in after}


def _median_round(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """The round with the median throughput (the middle one of an odd count)."""
    ordered = sorted(rounds, key=lambda r: r["steps_per_s"])
    return ordered[(len(ordered) - 1) // 2]


def latency(workload: Any, runs: int, tag: str, timeout_s: float) -> dict[str, Any]:
    per_step_ms: list[float] = []
    ids = []
    for i in range(runs):
        started = time.time()
        run_id = workload.submit(f"{tag}-{i}")
        finished = _wait(workload, [run_id], timeout_s, poll_s=0.005)[run_id]
        per_step_ms.append((finished - started) * 1000 / STEPS)
        ids.append(run_id)
    return {"runs": runs, "ids": ids, **_summary(per_step_ms, "step_ms")}


def _summary(values: list[float], unit: str) -> dict[str, float]:
    ordered = sorted(values)
    return {
        f"p50_{unit}": round(statistics.median(ordered), 2),
        f"p90_{unit}": round(ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))], 2),
        f"mean_{unit}": round(statistics.fmean(ordered), 2),
        f"min_{unit}": round(ordered[0], 2),
    }


def step_breakdown(database_url: str, ids: list[str]) -> dict[str, float]:
    """Medians (ms) of where a light-load workflow's time goes, from its Step rows."""
    from sqlmodel import col, select

    from storage.db import session_scope
    from storage.models import StepRow, WorkflowRow

    queue, run, hop, first, last = [], [], [], [], []
    with session_scope(database_url) as session:
        for workflow_id in ids:
            workflow = session.get_one(WorkflowRow, workflow_id)
            steps = session.exec(
                select(StepRow)
                .where(StepRow.workflow_id == workflow_id)
                .order_by(col(StepRow.position))
            ).all()
            first.append((steps[0].dispatched_at - workflow.created_at).total_seconds())
            for a, b in itertools.pairwise(steps):
                hop.append((b.dispatched_at - a.finished_at).total_seconds())
            for s in steps:
                queue.append((s.started_at - s.dispatched_at).total_seconds())
                run.append((s.finished_at - s.started_at).total_seconds())
            last.append((workflow.finished_at - steps[-1].finished_at).total_seconds())
    med = lambda xs: round(statistics.median(xs) * 1000, 2)  # noqa: E731
    return {
        "submit_to_first_dispatch_ms": med(first),
        "dispatch_to_claim_ms": med(queue),
        "claim_to_result_committed_ms": med(run),
        "result_to_next_dispatch_ms": med(hop),
        "last_result_to_workflow_finished_ms": med(last),
    }


# -- the run -------------------------------------------------------------------------------------


def _versions(database_url: str) -> dict[str, str]:
    import celery
    import kombu
    import redis
    import sqlalchemy
    from sqlalchemy import text

    from storage.db import engine_for

    with engine_for(database_url).connect() as connection:
        pg = connection.execute(text("SHOW server_version")).scalar_one()
    return {
        "python": platform.python_version(),
        "celery": celery.__version__,
        "kombu": kombu.__version__,
        "redis-py": redis.__version__,
        "sqlalchemy": sqlalchemy.__version__,
        "postgresql": str(pg),
    }


def _redis_server_version(redis_url: str) -> str:
    import redis

    client = redis.Redis.from_url(redis_url)
    version = str(client.info("server")["redis_version"])
    client.close()
    return version


def main() -> int:
    args = _parse()
    os.chdir(ROOT)
    if args.cprofile:
        args.instrument = True
    report: dict[str, Any] = {}
    with bench_run(args.postgres_url, args.redis_url, keep_db=args.keep_db) as run:
        report = _run(args, run.id, run.prefix, run.db_name, run.database_url, run.workers)
    return 0 if report else 1


def _run(
    args: argparse.Namespace,
    run_id: str,
    prefix: str,
    db_name: str,
    database_url: str,
    workers: list[Any],
) -> dict[str, Any]:
    """Start the workers (appended to ``workers`` for the caller to stop), measure, report."""
    logs = RESULTS / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    for old in logs.glob("worker-*.log"):
        old.unlink()
    for old in [*logs.glob("cprofile-*.pstats"), *logs.glob("py-spy-*.txt")]:
        old.unlink()
    env = {
        "AGENTYARD_REDIS_URL": args.redis_url,
        "AGENTYARD_DATABASE_URL": database_url,
        "AGENTYARD_REDIS_KEY_PREFIX": prefix,
        "AGENTYARD_HOME": str(ROOT / ".agentyard" / f"bench-{run_id}"),
        "AGENTYARD_LOG_LEVEL": args.loglevel,
        "AGENTYARD_LOG_FORMAT": "json",
    }
    if args.floor:
        env["BENCH_FLOOR"] = "1"
    if args.instrument:
        env["BENCH_INSTRUMENT"] = str(logs)
        if args.cprofile:
            env["BENCH_CPROFILE"] = "1"
    os.environ.update({k: v for k, v in env.items() if k != "BENCH_INSTRUMENT"})
    # The driver (submitting, polling) logs warnings only; the workers log at --loglevel.
    os.environ["AGENTYARD_LOG_LEVEL"] = "WARNING"

    from bench import overhead_team as team

    orc = team.orc
    workers += worker_processes(
        "bench.overhead_team:orc",
        ["--all-agents", "--coordinator"],
        count=args.processes,
        concurrency=args.concurrency,
        loglevel=args.loglevel,
        name="bench",
        env=env,
        logs=logs,
    )
    print(f"bench run {run_id}: database {db_name}, redis key prefix {prefix!r}")
    print(
        f"{args.processes} worker process(es) x {args.concurrency} threads, each serving "
        f"coordinator + {len(team.AGENTS)} agent queues + {team.NOOP_QUEUE}"
        f"{' + ' + team.FLOOR_QUEUE if args.floor else ''}; "
        f"{os.cpu_count()} CPU core(s)"
    )
    queues = ["coordinator", team.NOOP_QUEUE, *([team.FLOOR_QUEUE] if args.floor else [])]
    start_workers(orc, workers, [*queues, *(f"agent.{a}" for a in team.AGENTS)])

    yard = Agentyard(team)
    plain = PlainCelery(team, args.redis_url, prefix)
    workloads: dict[str, Any] = {"celery": plain, "agentyard": yard}
    if args.floor:
        workloads[FLOOR] = CeleryWithStorage(team, args.redis_url, prefix, database_url)
    timeout = max(120.0, args.workflows * 2.0)
    print(f"warm-up: {args.warmup} runs of each workload...")
    for workload in workloads.values():
        throughput(workload, args.warmup, "warmup", timeout)
    if args.instrument:
        _reset_instruments(orc)

    print(
        f"throughput: {args.workflows} at once, each; {args.repeat} round(s), the workloads "
        "back to back in each, taking turns to go first..."
    )
    pids = [w.pid for w in workers]
    servers = ServerCounts(args.redis_url, database_url)
    names = list(workloads)
    rounds: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    for r in range(args.repeat):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            with _py_spy(pids if args.py_spy and r == 0 and name == "agentyard" else [], logs):
                rounds[name].append(
                    throughput(workloads[name], args.workflows, f"tp{r}", timeout, pids, servers)
                )
        rates = {name: rounds[name][-1]["steps_per_s"] for name in names}
        print(
            f"  round {r + 1} ({order[0]} first): "
            + ", ".join(f"{name} {rates[name]} steps/s" for name in names)
            + f", ratio {rates['agentyard'] / rates['celery']:.3f}"
        )
    servers.close()
    medians = {name: _median_round(rounds[name]) for name in names}
    tp_plain, tp_yard = medians["celery"], medians["agentyard"]
    # Each round's measurements are seconds apart, so drift in the host's speed (it moves by
    # +-20 % on a shared VM) cancels in their ratio; the median of those is the figure.
    ratios = _round_ratios(rounds, "agentyard", "celery")
    counts: dict[str, Any] = {}
    if args.instrument:
        counts["throughput"] = _collect_instruments(orc, "throughput", len(workers))
        _reset_instruments(orc)
    print(f"latency: {args.runs} one at a time, each...")
    latencies = {name: latency(workloads[name], args.runs, "lat", 60) for name in names}
    lat_plain, lat_yard = latencies["celery"], latencies["agentyard"]
    if args.instrument:
        counts["latency"] = _collect_instruments(orc, "latency", len(workers))
    breakdown = step_breakdown(database_url, lat_yard.pop("ids"))
    for figures in latencies.values():
        figures.pop("ids", None)

    ratio = statistics.median(ratios)
    report = {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpu_cores": os.cpu_count(),
            "platform": platform.platform(),
            "redis": _redis_server_version(args.redis_url),
            **_versions(database_url),
        },
        "config": {
            "workflows": args.workflows,
            "throughput_rounds": args.repeat,
            "latency_runs": args.runs,
            "worker_processes": args.processes,
            "threads_per_process": args.concurrency,
            "pool": "threads",
            "worker_loglevel": args.loglevel,
            "model": "offline:echo",
            "steps_per_workflow": STEPS,
            "durability": "app defaults: acks_late, reject_on_worker_lost, "
            "prefetch_multiplier=1, PostgreSQL audit + outbox",
            "instrumented": args.instrument,
        },
        "throughput": {
            "note": "cpu_s / cpu_ms_per_step: CPU used during the phase by the bench's worker "
            "processes, by every postgres and redis-server process, by this driver (submits and "
            "polls), and by the whole machine (other load included)",
            "agentyard": tp_yard,
            "celery": tp_plain,
            "ratio_agentyard_over_celery": round(ratio, 3),
            "ratio_definition": "median over rounds of (agentyard / celery) within the round",
            "ratio_of_median_throughputs": round(
                tp_yard["steps_per_s"] / tp_plain["steps_per_s"], 3
            ),
            "rounds": {k: [r["steps_per_s"] for r in v] for k, v in rounds.items()},
            "ratio_per_round": [round(r, 3) for r in ratios],
        },
        "latency_light_load": {
            "definition": "per-step latency = (worker-clock finish - client-clock submit) / 5, "
            "one run at a time",
            "agentyard": lat_yard,
            "celery": lat_plain,
            "agentyard_step_breakdown_p50": breakdown,
        },
        "goal": {"ratio_at_least": GOAL_RATIO, "met": ratio >= GOAL_RATIO},
    }
    if args.floor:
        floor_ratios = _round_ratios(rounds, FLOOR, "celery")
        report["floor"] = {
            "what": "plain Celery tasks doing a step's storage work (bench/durable_floor.py) "
            "without agentyard's logic",
            "throughput": medians[FLOOR],
            "latency_light_load": latencies[FLOOR],
            "ratio_over_celery": round(statistics.median(floor_ratios), 3),
            "ratio_agentyard_over_floor": round(
                statistics.median(_round_ratios(rounds, "agentyard", FLOOR)), 3
            ),
            "rounds": [r["steps_per_s"] for r in rounds[FLOOR]],
            "ratio_per_round": [round(r, 3) for r in floor_ratios],
        }
    if args.instrument:
        report["instrument"] = counts
    _print(report)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    shown = args.output.relative_to(ROOT) if args.output.is_relative_to(ROOT) else args.output
    print(f"\nwrote {shown}")
    return report


def _round_ratios(rounds: dict[str, list[dict[str, Any]]], top: str, bottom: str) -> list[float]:
    """Per round, ``top``'s steps/s over ``bottom``'s."""
    pairs = zip(rounds[top], rounds[bottom], strict=True)
    return [t["steps_per_s"] / b["steps_per_s"] for t, b in pairs]


@contextlib.contextmanager
def _py_spy(pids: list[int], logs: Path) -> Any:
    """py-spy record on each pid for the duration of the block, sampling the thread that holds
    the GIL only: without ``--gil``, py-spy counts a thread blocked reading a socket (redis-py,
    psycopg) as active, and the waits on the servers drown the CPU."""
    import shutil
    import signal
    import subprocess

    exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    spies = [
        subprocess.Popen(
            [
                exe,
                "record",
                "--pid",
                str(pid),
                "--rate",
                "250",
                "--format",
                "raw",
                "--nonblocking",
                "--gil",
                "--output",
                str(logs / f"py-spy-{pid}.txt"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for pid in pids
    ]
    if spies:
        time.sleep(1.0)  # attached before the phase starts
    try:
        yield
    finally:
        for spy in spies:
            spy.send_signal(signal.SIGINT)
        for spy in spies:
            spy.wait(timeout=30)


def _reset_instruments(orc: Any) -> None:
    orc.celery.control.broadcast("bench_instrument_reset", reply=True, timeout=2.0)


def _collect_instruments(orc: Any, phase: str, count: int) -> dict[str, Any]:
    from bench import instrument

    replies = (
        orc.celery.control.broadcast(
            "bench_instrument_dump", arguments={"phase": phase}, reply=True, timeout=10.0
        )
        or []
    )
    dumps = [payload for reply in replies for payload in reply.values()]
    if len(dumps) < count:
        print(f"warning: {len(dumps)} of {count} workers sent their instrument counts")
    return instrument.merge(dumps)


def _print(report: dict[str, Any]) -> None:
    tp = report["throughput"]
    lat = report["latency_light_load"]
    floor = report.get("floor")
    # The columns: agentyard, plain Celery and, with --floor, plain Celery doing the storage work.
    columns = [tp["agentyard"], tp["celery"], *([floor["throughput"]] if floor else [])]
    lats = [lat["agentyard"], lat["celery"], *([floor["latency_light_load"]] if floor else [])]
    ly, lc = lats[0], lats[1]
    cfg = report["config"]

    width = 16 if floor else 12

    def row(label: str, values: list[float], after: str = "") -> None:
        print(f"{label:34}" + "".join(f"{v:>{width}.2f}" for v in values) + after)

    print()
    print(
        f"{cfg['worker_processes']} worker processes x {cfg['threads_per_process']} threads, "
        f"{report['machine']['cpu_cores']} cores; full durability (app defaults)"
    )
    header = ["agentyard", "celery", *([FLOOR] if floor else [])]
    print(f"{'':34}" + "".join(f"{h:>{width}}" for h in header) + f"{'ratio':>9}")
    ratio_now = f"{tp['ratio_of_median_throughputs']:>9.3f}"
    row("throughput, steps/s (median round)", [c["steps_per_s"] for c in columns], ratio_now)
    per_round = ", ".join(f"{r:.3f}" for r in tp["ratio_per_round"])
    print(
        f"{'ratio, median of the rounds':34}{'':{width * len(columns)}}"
        f"{tp['ratio_agentyard_over_celery']:>9.3f}   (rounds: {per_round})"
    )
    row("  (N at once, elapsed s)", [c["elapsed_s"] for c in columns])
    row("  (of which submitting, s)", [c["submit_s"] for c in columns])
    labels = {"machine_busy": "whole machine"}
    for group in ("workers", "postgres", "redis", "driver", "machine_busy"):
        if group in columns[0].get("cpu_ms_per_step", {}):
            label = "  CPU ms/step, " + labels.get(group, group)
            row(label, [c["cpu_ms_per_step"][group] for c in columns])
    counted = {
        "pg_transactions": "PG transactions",
        "redis_commands": "Redis commands",
        "queue_pushes": "broker messages",
        "event_publishes": "task events",
        "redis_cpu_us": "µs of this Redis's CPU",
    }
    for key, label in counted.items():
        if key in columns[0].get("server_counts_per_step", {}):
            row("  per step, " + label, [c["server_counts_per_step"][key] for c in columns])
    statements = _statements_per_step(report)
    if statements is not None:
        floor_task = report["instrument"]["throughput"].get("bench.floor", {})
        floor_statements = [floor_task.get("sql_per_task", 0.0)] if floor else []
        row("  per step, PG statements", [statements, 0.0, *floor_statements])
    else:
        print("  (PostgreSQL statements per step: run with --instrument)")
    row(
        "latency per step p50, ms",
        [x["p50_step_ms"] for x in lats],
        f"{ly['p50_step_ms'] / lc['p50_step_ms']:>8.1f}x",
    )
    row("latency per step p90, ms", [x["p90_step_ms"] for x in lats])
    print(f"  per-step latency = (finish - submit) / {STEPS}, {ly['runs']} runs one at a time")
    print(
        "agentyard step, p50 (ms): "
        + ", ".join(
            f"{k.removesuffix('_ms').replace('_', ' ')} {v}"
            for k, v in lat["agentyard_step_breakdown_p50"].items()
        )
    )
    if floor:
        floor_rounds = ", ".join(f"{r:.3f}" for r in floor["ratio_per_round"])
        print(
            f"{FLOOR} (a step's storage work, none of agentyard's logic) over celery: "
            f"{floor['ratio_over_celery']:.3f} (median of the rounds: {floor_rounds}); "
            f"agentyard over {FLOOR}: {floor['ratio_agentyard_over_floor']:.3f}"
        )
    goal = report["goal"]
    print(f"goal ratio >= {goal['ratio_at_least']}: {'met' if goal['met'] else 'NOT met'}")
    if "instrument" in report:
        _print_instrument(report["instrument"])


def _statements_per_step(report: dict[str, Any]) -> float | None:
    """SQL statements per agentyard step in the throughput phase, from the workers' counters
    (with --instrument; the submits, made by the driver, are not in them)."""
    tasks = report.get("instrument", {}).get("throughput")
    if not tasks:
        return None
    statements = sum(
        row.get("sql_per_task", 0) * row.get("tasks", 0)
        for name, row in tasks.items()
        if not name.startswith("bench.")
    )
    steps = report["config"]["steps_per_workflow"] * report["config"]["workflows"]
    return statements / (steps * report["config"]["throughput_rounds"])


def _print_instrument(phases: dict[str, Any]) -> None:
    keys = [
        ("tasks", "tasks"),
        ("task_ms_per_task", "wall ms"),
        ("task_cpu_ms_per_task", "cpu ms"),
        ("sql_per_task", "SQL"),
        ("commits_per_task", "commits"),
        ("pool_checkouts_per_task", "checkouts"),
        ("sql_ms_per_task", "SQL ms"),
        ("publishes_per_task", "publishes"),
        ("publish_ms_per_task", "publish ms"),
    ]
    for phase, tasks in phases.items():
        print(
            f"\nper task, {phase} phase "
            "(worker-side; SQL excludes BEGIN; commits include autocommitted statements):"
        )
        print(f"  {'task':32}" + "".join(f"{label:>11}" for _, label in keys))
        for name, row in tasks.items():
            print(
                f"  {name:32}"
                + "".join(
                    f"{row.get(k, 0):>11.2f}" if k != "tasks" else f"{row.get(k, 0):>11d}"
                    for k, _ in keys
                )
            )


if __name__ == "__main__":
    sys.exit(main())
