"""The bus's throughput against plain Celery ``send_task``: same Redis, same worker processes,
same payload, same run.

    python bench/bus.py [--messages 2000] [--repeat 3] [--publishers 1] [--processes 2]
                        [--concurrency 4]

What runs:

- a fresh PostgreSQL database and a fresh Redis key prefix of this run's own (both removed at the
  end), the app's defaults untouched (acks late, reject on worker lost, prefetch 1, JSON, task
  events, the audit rows in PostgreSQL);
- ``--processes`` real ``agentyard worker bench.bus_team:orc --agents sink`` processes on the
  threads pool; each also consumes the baseline's queue ``bench.bus_noop`` (bench/bus_team.py),
  so both sides run on the very same processes, threads and broker connections;
- three sides, each a batch of N messages published from this process (``--publishers``
  threads) and consumed by the workers, every consumer doing one Redis ``INCR``:

  - ``celery``: ``app.send_task("bench.bus_noop", kwargs={"envelope": <wire message>})``, the
    wire message being the very dict the bus puts on its queue (built once per batch);
  - ``bus``: ``orc.bus.publish(AgentMessage(type=NOTIFICATION, sender="bench", to=("sink",),
    payload=..., priority=5))`` to the handler registered with ``@orc.on_message("sink")``:
    an audit row in PostgreSQL, then the queue; the inbox decodes it, runs the handler, and
    stamps the row delivered;
  - ``bus+ack``: the same with ``requires_ack=True``: the acknowledgement is awaited in Redis
    before the message is sent, and the inbox acknowledges it after the handler returns (Redis,
    and a ``message_acks`` row in PostgreSQL);

- msgs/s = N / (the time the batch's counter reached N, from the worker's clock - the time of
  the first publish); published/s is N / the time the publishing took;
- ``--repeat`` rounds, each measuring the three sides back to back, the order reversed every
  other round; each ratio reported is the median of the rounds' own ratios (the host's speed
  drifts between rounds, much less within one).

Prints a table and writes bench/results/bus.json. Worker logs go to bench/results/logs/.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
# Run as a script, this file's own directory comes first on sys.path, and this file's name
# would hide the `bus` package: look in the project's root instead.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH_DIR]
sys.path.insert(0, str(ROOT))

from bench.harness import (  # noqa: E402  (needs the path set above)
    add_server_options,
    bench_run,
    start_workers,
    worker_processes,
)
from bench.overhead import (  # noqa: E402
    _redis_server_version,
    _versions,
    cpu_delta,
    cpu_snapshot,
)

RESULTS = ROOT / "bench" / "results"
SIDES = ("celery", "bus", "bus+ack")
PRIORITY = 5
POLL_S = 0.005


def _parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--messages", type=int, default=2000, help="N, messages per batch")
    p.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="rounds, each measuring the three sides back to back (the order is reversed every "
        "other round); each ratio reported is the median of the rounds' ratios",
    )
    p.add_argument(
        "--warmup", type=int, default=200, help="messages each side sends first, unmeasured"
    )
    p.add_argument(
        "--publishers", type=int, default=1, help="threads of this process publishing a batch"
    )
    p.add_argument("--processes", type=int, default=2, help="worker processes")
    p.add_argument("--concurrency", type=int, default=4, help="threads per worker process")
    p.add_argument(
        "--payload-bytes",
        type=int,
        default=256,
        help="size of the filler text in each message's payload",
    )
    p.add_argument("--loglevel", default="INFO", help="of the workers (Celery and agentyard)")
    add_server_options(p)
    p.add_argument("--keep-db", action="store_true", help="do not drop the bench database")
    p.add_argument("--output", type=Path, default=RESULTS / "bus.json")
    args = p.parse_args()
    if min(args.messages, args.repeat, args.publishers, args.processes, args.concurrency) < 1:
        p.error("--messages, --repeat, --publishers, --processes and --concurrency must be >= 1")
    return args


# -- the three sides -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Batch:
    """N messages of one side in one round, all with the same payload."""

    name: str
    total: int
    filler: str

    @property
    def payload(self) -> dict[str, Any]:
        # `batch` and `total` tell the consumer which counter to bump and when it is complete.
        return {"batch": self.name, "total": self.total, "text": self.filler}


class Side:
    """How one side publishes a message of a batch."""

    label: str

    def prepare(self, batch: Batch) -> None:
        """Called once per batch, before the clock starts."""

    def publish(self, batch: Batch) -> None:
        raise NotImplementedError

    def drained(self) -> bool:
        """Whether the work a consumer does after its handler returns is done too."""
        return True


def _message(team: ModuleType, batch: Batch, requires_ack: bool) -> Any:
    from bus.envelope import AgentMessage, MessageType

    return AgentMessage(
        type=MessageType.NOTIFICATION,
        sender="bench",
        to=(team.SINK,),
        payload=batch.payload,
        priority=PRIORITY,
        requires_ack=requires_ack,
    )


class PlainCelery(Side):
    """``send_task`` of the bus's wire message to a plain task on a queue of its own."""

    label = "celery"

    def __init__(self, team: ModuleType) -> None:
        from bus.brokers import broker_for

        self._team = team
        self._app = team.orc.celery
        self._broker_priority = broker_for(team.orc.settings.effective_broker_url).wire_priority(
            PRIORITY
        )
        self.envelope: dict[str, Any] = {}

    def prepare(self, batch: Batch) -> None:
        # The very dict the bus sends as the task's `envelope` (bus.publisher.Bus.send_copy).
        self.envelope = self._team.orc.bus.on_the_wire(_message(self._team, batch, False)).encode()

    def publish(self, batch: Batch) -> None:
        self._app.send_task(
            self._team.BASELINE_TASK,
            kwargs={"envelope": self.envelope},
            queue=self._team.BASELINE_QUEUE,
            priority=self._broker_priority,
        )


class BusSide(Side):
    """``orc.bus.publish`` of a new ``AgentMessage`` to the agent ``sink``."""

    def __init__(self, team: ModuleType, database_url: str, requires_ack: bool) -> None:
        self.label = "bus+ack" if requires_ack else "bus"
        self._team = team
        self._bus = team.orc.bus
        self._database_url = database_url
        self._requires_ack = requires_ack

    def publish(self, batch: Batch) -> None:
        self._bus.publish(_message(self._team, batch, self._requires_ack))

    def drained(self) -> bool:
        """Every message stamped delivered, and every acknowledgement made."""
        from sqlalchemy import text

        from storage.db import engine_for

        with engine_for(self._database_url).connect() as connection:
            undelivered = connection.execute(
                text("SELECT count(*) FROM messages WHERE delivered_at IS NULL")
            ).scalar_one()
        acks = self._bus.acks
        return undelivered == 0 and (acks is None or acks.waiting() == 0)


# -- measuring a batch -----------------------------------------------------------------------------


def _publish_all(side: Side, batch: Batch, publishers: int) -> tuple[float, float]:
    """Publish the batch from ``publishers`` threads; (time of the first publish, of the end)."""
    shares = [batch.total // publishers + (i < batch.total % publishers) for i in range(publishers)]
    go = threading.Barrier(publishers + 1)
    errors: list[BaseException] = []

    def publish(count: int) -> None:
        go.wait()
        try:
            for _ in range(count):
                side.publish(batch)
        except BaseException as exc:  # handed to the main thread
            errors.append(exc)

    threads = [threading.Thread(target=publish, args=(share,)) for share in shares]
    for thread in threads:
        thread.start()
    started = time.time()
    go.wait()
    for thread in threads:
        thread.join()
    published = time.time()
    if errors:
        raise errors[0]
    return started, published


def _wait_finished(
    redis: Any, team: ModuleType, prefix: str, batch: Batch, timeout_s: float
) -> float:
    """The worker-clock time the batch's counter reached its total."""
    deadline = time.monotonic() + timeout_s
    key = team.finished_key(prefix, batch.name)
    while (finished := redis.get(key)) is None:
        if time.monotonic() > deadline:
            consumed = redis.get(team.counter_key(prefix, batch.name)) or 0
            raise TimeoutError(
                f"batch {batch.name}: {consumed} of {batch.total} consumed after {timeout_s}s"
            )
        time.sleep(POLL_S)
    return float(finished)


def _wait_drained(side: Side, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not side.drained():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{side.label}: consumers still busy {timeout_s}s after the batch")
        time.sleep(0.05)


@dataclass(frozen=True)
class Measure:
    """Runs one batch of a side and measures it; what every batch of the run shares."""

    redis: Any
    team: ModuleType
    prefix: str
    publishers: int
    worker_pids: list[int]
    filler: str

    def batch(self, side: Side, name: str, total: int) -> dict[str, Any]:
        batch = Batch(name, total, self.filler)
        side.prepare(batch)
        timeout_s = max(120.0, total * 0.1)
        cpu_before = cpu_snapshot(self.worker_pids)
        started, published = _publish_all(side, batch, self.publishers)
        finished = _wait_finished(self.redis, self.team, self.prefix, batch, timeout_s)
        _wait_drained(side, timeout_s)  # before the next batch: no overlap
        # A process that exits during the batch (an autovacuum worker, say) takes its CPU time
        # out of the sum: a group's delta can come out slightly low, even below zero.
        cpu = {
            k: max(v, 0.0) for k, v in cpu_delta(cpu_before, cpu_snapshot(self.worker_pids)).items()
        }
        elapsed = finished - started
        return {
            "messages": total,
            "elapsed_s": round(elapsed, 3),
            "msgs_per_s": round(total / elapsed, 1),
            "publish_s": round(published - started, 3),
            "published_per_s": round(total / (published - started), 1),
            # How long the consumers took after the last publish returned: near zero when they
            # kept pace, and msgs/s is then the publishers' rate.
            "tail_ms": round((finished - published) * 1000, 1),
            # CPU seconds during the batch (to the end of draining), by process group.
            "cpu_s": cpu,
            "cpu_ms_per_msg": {k: round(v * 1000 / total, 3) for k, v in cpu.items()},
        }


def _median_round(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """The round with the median throughput (the middle one of an odd count)."""
    ordered = sorted(rounds, key=lambda r: r["msgs_per_s"])
    return ordered[(len(ordered) - 1) // 2]


# -- what PostgreSQL recorded ----------------------------------------------------------------------


def _audit_counts(database_url: str) -> dict[str, int]:
    from sqlalchemy import text

    from storage.db import engine_for

    queries = {
        "messages": "SELECT count(*) FROM messages",
        "undelivered": "SELECT count(*) FROM messages WHERE delivered_at IS NULL",
        "requiring_ack": "SELECT count(*) FROM messages WHERE requires_ack",
        "acks": "SELECT count(*) FROM message_acks",
        "dead_letters": "SELECT count(*) FROM dead_letters",
    }
    with engine_for(database_url).connect() as connection:
        return {k: int(connection.execute(text(q)).scalar_one()) for k, q in queries.items()}


def _check_audit(counts: dict[str, int], published: dict[str, int]) -> list[str]:
    """What does not add up between what was published and what PostgreSQL recorded."""
    wanted = {
        "messages": published["bus"] + published["bus+ack"],
        "undelivered": 0,
        "requiring_ack": published["bus+ack"],
        "acks": published["bus+ack"],
        "dead_letters": 0,
    }
    return [f"{k}: {counts[k]}, expected {v}" for k, v in wanted.items() if counts[k] != v]


# -- the run ---------------------------------------------------------------------------------------


def main() -> int:
    args = _parse()
    os.chdir(ROOT)
    report: dict[str, Any] = {}
    with bench_run(args.postgres_url, args.redis_url, keep_db=args.keep_db) as run:
        report = _run(args, run.id, run.prefix, run.db_name, run.database_url, run.workers)
    return 0 if report and not report["audit"]["mismatches"] else 1


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
    for old in logs.glob("bus-worker-*.log"):
        old.unlink()
    env = {
        "AGENTYARD_REDIS_URL": args.redis_url,
        "AGENTYARD_DATABASE_URL": database_url,
        "AGENTYARD_REDIS_KEY_PREFIX": prefix,
        "AGENTYARD_HOME": str(ROOT / ".agentyard" / f"bench-{run_id}"),
        "AGENTYARD_LOG_LEVEL": args.loglevel,
        "AGENTYARD_LOG_FORMAT": "json",
    }
    os.environ.update(env)
    # The driver (publishing, polling) logs warnings only; the workers log at --loglevel.
    os.environ["AGENTYARD_LOG_LEVEL"] = "WARNING"

    from bench import bus_team as team
    from storage.redis_client import redis_for

    orc = team.orc
    workers += worker_processes(
        "bench.bus_team:orc",
        ["--agents", team.SINK],
        count=args.processes,
        concurrency=args.concurrency,
        loglevel=args.loglevel,
        name="benchbus",
        env=env,
        logs=logs,
    )
    print(f"bench run {run_id}: database {db_name}, redis key prefix {prefix!r}")
    print(
        f"{args.processes} worker process(es) x {args.concurrency} threads, each consuming "
        f"agent.{team.SINK} and {team.BASELINE_QUEUE}; {args.publishers} publishing thread(s); "
        f"{os.cpu_count()} CPU core(s)"
    )
    start_workers(orc, workers, [f"agent.{team.SINK}", team.BASELINE_QUEUE])

    baseline = PlainCelery(team)
    sides: dict[str, Side] = {
        "celery": baseline,
        "bus": BusSide(team, database_url, requires_ack=False),
        "bus+ack": BusSide(team, database_url, requires_ack=True),
    }
    measure = Measure(
        redis=redis_for(args.redis_url),
        team=team,
        prefix=prefix,
        publishers=args.publishers,
        worker_pids=[w.pid for w in workers],
        filler=("bench message " * (args.payload_bytes // 14 + 1))[: args.payload_bytes],
    )
    published = dict.fromkeys(SIDES, 0)

    def run_batch(name: str, batch: str, total: int) -> dict[str, Any]:
        result = measure.batch(sides[name], batch, total)
        published[name] += total
        return result

    if args.warmup:
        print(f"warm-up: {args.warmup} messages each...")
        for name in SIDES:
            run_batch(name, f"warmup-{_slug(name)}", args.warmup)

    print(
        f"throughput: {args.messages} messages per batch; {args.repeat} round(s), the three "
        "sides back to back in each, the order reversed every other round..."
    )
    rounds: dict[str, list[dict[str, Any]]] = {name: [] for name in SIDES}
    for r in range(args.repeat):
        order = SIDES if r % 2 == 0 else tuple(reversed(SIDES))
        for name in order:
            rounds[name].append(run_batch(name, f"round{r}-{_slug(name)}", args.messages))
        rates = {name: rounds[name][-1]["msgs_per_s"] for name in SIDES}
        print(
            f"  round {r + 1} ({order[0]} first): "
            + ", ".join(f"{name} {rates[name]:.0f} msgs/s" for name in SIDES)
            + f"; bus/celery {rates['bus'] / rates['celery']:.3f}, "
            f"bus+ack/celery {rates['bus+ack'] / rates['celery']:.3f}"
        )

    ratios = {
        name: [
            b["msgs_per_s"] / c["msgs_per_s"]
            for b, c in zip(rounds[name], rounds["celery"], strict=True)
        ]
        for name in ("bus", "bus+ack")
    }
    audit = _audit_counts(database_url)
    mismatches = _check_audit(audit, published)
    report = {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpu_cores": os.cpu_count(),
            "platform": platform.platform(),
            "redis": _redis_server_version(args.redis_url),
            **_versions(database_url),
        },
        "config": {
            "messages_per_batch": args.messages,
            "rounds": args.repeat,
            "warmup_messages": args.warmup,
            "publisher_threads": args.publishers,
            "worker_processes": args.processes,
            "threads_per_process": args.concurrency,
            "pool": "threads",
            "worker_loglevel": args.loglevel,
            "payload_filler_bytes": args.payload_bytes,
            "wire_message_bytes": len(json.dumps(baseline.envelope, separators=(",", ":"))),
            "priority": PRIORITY,
            "durability": "app defaults: acks_late, reject_on_worker_lost, "
            "prefetch_multiplier=1, task events, PostgreSQL audit rows",
        },
        "definition": "msgs/s = N / (worker-clock time the batch's counter reached N - time of "
        "the first publish); each ratio is the median over rounds of (side / celery) "
        "within the round",
        "throughput": {name: _median_round(rounds[name]) for name in SIDES},
        "ratio_bus_over_celery": round(statistics.median(ratios["bus"]), 3),
        "ratio_bus_ack_over_celery": round(statistics.median(ratios["bus+ack"]), 3),
        "rounds": {name: [r["msgs_per_s"] for r in rounds[name]] for name in SIDES},
        "ratio_per_round": {name: [round(x, 3) for x in v] for name, v in ratios.items()},
        "audit": {"counts": audit, "published": published, "mismatches": mismatches},
    }
    _print(report)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    shown = args.output.relative_to(ROOT) if args.output.is_relative_to(ROOT) else args.output
    print(f"\nwrote {shown}")
    return report


def _slug(side: str) -> str:
    return side.replace("+", "-")


def _print(report: dict[str, Any]) -> None:
    cfg = report["config"]
    tp = report["throughput"]
    print()
    print(
        f"{cfg['worker_processes']} worker processes x {cfg['threads_per_process']} threads, "
        f"{report['machine']['cpu_cores']} cores; {cfg['publisher_threads']} publishing "
        f"thread(s); {cfg['messages_per_batch']} messages per batch of "
        f"{cfg['wire_message_bytes']} bytes on the wire; median of {cfg['rounds']} round(s)"
    )
    ratio = {
        "celery": "",
        "bus": f"{report['ratio_bus_over_celery']:.3f}",
        "bus+ack": f"{report['ratio_bus_ack_over_celery']:.3f}",
    }
    labels = {
        "celery": "celery send_task (baseline)",
        "bus": "orc.bus.publish",
        "bus+ack": "orc.bus.publish, requires_ack",
    }
    print(
        f"{'':31}{'msgs/s':>9}{'/ celery':>10}{'published/s':>13}{'tail ms':>9}"
        f"{'CPU ms/msg: workers':>21}{'postgres':>10}{'redis':>8}{'driver':>8}"
    )
    for name in SIDES:
        row, cpu = tp[name], tp[name]["cpu_ms_per_msg"]
        print(
            f"{labels[name]:31}{row['msgs_per_s']:>9.1f}{ratio[name]:>10}"
            f"{row['published_per_s']:>13.1f}{row['tail_ms']:>9.1f}"
            + "".join(
                f"{cpu.get(group, 0.0):>{width}.3f}"
                for group, width in (("workers", 21), ("postgres", 10), ("redis", 8), ("driver", 8))
            )
        )
    for name, per_round in report["ratio_per_round"].items():
        print(f"  {name} / celery per round: {', '.join(f'{r:.3f}' for r in per_round)}")
    print(
        "  msgs/s = N / (worker-clock time the counter reached N - first publish); "
        "published/s = N / publishing time;\n"
        "  tail = last consumed - last published (small: the consumers kept pace, and msgs/s "
        "is the\n  publishing rate; more --publishers load the consumers harder)"
    )
    audit = report["audit"]
    if audit["mismatches"]:
        print("AUDIT MISMATCH: " + "; ".join(audit["mismatches"]))
    else:
        counts = audit["counts"]
        print(
            f"audit: {counts['messages']} bus messages recorded, all delivered; "
            f"{counts['acks']} acknowledgements; no dead letters"
        )


if __name__ == "__main__":
    sys.exit(main())
