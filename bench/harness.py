"""What the benchmarks share: a database and a Redis key prefix of the run's own, and the real
worker processes both sides of a comparison run on.

Every benchmark measures agentyard against a baseline on the SAME worker processes: each worker
consumes agentyard's queues and the baseline's, and ``start_workers`` refuses to go on until every
worker says it does.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import socket
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


# -- the servers, and a database and Redis keys of this run's own ------------------------------


def add_server_options(parser: argparse.ArgumentParser) -> None:
    """``--redis-url`` and ``--postgres-url``, defaulting to BENCH_REDIS_URL, BENCH_POSTGRES_URL
    or this machine's servers."""
    parser.add_argument(
        "--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(
            "BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
        ),
        help="an existing database to connect to; the bench creates and drops its own next to it",
    )


def create_database(admin_url: str, name: str) -> str:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from storage.settings import normalize_database_url

    admin_url = normalize_database_url(admin_url)
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def drop_database(admin_url: str, name: str) -> None:
    from sqlalchemy import create_engine, text

    from storage.settings import normalize_database_url

    admin = create_engine(normalize_database_url(admin_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def delete_keys(redis_url: str, prefix: str) -> int:
    import redis

    client = redis.Redis.from_url(redis_url)
    deleted = 0
    batch: list[bytes] = []
    for key in client.scan_iter(match=f"{prefix}*", count=1000):
        batch.append(key)
        if len(batch) >= 500:
            deleted += client.delete(*batch)
            batch = []
    if batch:
        deleted += client.delete(*batch)
    client.close()
    return deleted


@dataclass(frozen=True)
class BenchRun:
    """One benchmark run's own: its id, Redis key prefix and database, and the worker processes
    it started (stopped when the run ends)."""

    id: str
    prefix: str
    db_name: str
    database_url: str
    workers: list[Any] = field(default_factory=list)

    def settings(self, redis_url: str, **more: str) -> dict[str, str]:
        """The ``AGENTYARD_*`` settings of this run's processes (its database and key prefix,
        warnings only), and ``more``."""
        return {
            "AGENTYARD_REDIS_URL": redis_url,
            "AGENTYARD_DATABASE_URL": self.database_url,
            "AGENTYARD_REDIS_KEY_PREFIX": self.prefix,
            "AGENTYARD_LOG_LEVEL": "WARNING",
            **more,
        }


@contextlib.contextmanager
def bench_run(
    postgres_url: str, redis_url: str, *, stem: str = "bench", keep_db: bool = False
) -> Iterator[BenchRun]:
    """A fresh database and Redis key prefix for one run; at the end, its workers are stopped,
    its keys deleted and its database dropped (kept with ``keep_db``)."""
    run_id = uuid.uuid4().hex[:8]
    prefix, db_name = f"{stem}-{run_id}:", f"agentyard_bench_{run_id}"
    run = BenchRun(run_id, prefix, db_name, create_database(postgres_url, db_name))
    try:
        yield run
    finally:
        for worker in run.workers:
            worker.stop(grace_s=15)
        from storage.db import engine_for

        with contextlib.suppress(Exception):
            engine_for(run.database_url).dispose()
        deleted = delete_keys(redis_url, prefix)
        if keep_db:
            print(f"kept database {db_name}; deleted {deleted} Redis key(s) under {prefix!r}")
        else:
            drop_database(postgres_url, db_name)
            print(f"dropped database {db_name}; deleted {deleted} Redis key(s) under {prefix!r}")


# -- the worker processes ------------------------------------------------------------------------


def worker_processes(
    team_spec: str,
    serves: Iterable[str],
    *,
    count: int,
    concurrency: int,
    loglevel: str,
    name: str,
    env: Mapping[str, str],
    logs: Path,
) -> list[Any]:
    """``count`` real ``agentyard worker`` processes of ``team_spec`` on the threads pool, each
    serving what ``serves`` names (``--all-agents``, ``--agents x``...), not started yet."""
    from workers.processes import WorkerProcess

    return [
        WorkerProcess(
            team_spec,
            *serves,
            "--pool",
            "threads",
            "--concurrency",
            str(concurrency),
            "--name",
            f"{name}{i}",
            "--loglevel",
            loglevel,
            env=dict(env),
            cwd=ROOT,
            log_path=logs / f"{name}-worker-{i}.log",
        )
        for i in range(count)
    ]


def start_workers(orc: Any, workers: list[Any], queues: Iterable[str]) -> None:
    """Start ``workers``, wait until each answers, and check each consumes every one of
    ``queues`` (both sides of the comparison on the same processes)."""
    from workers.processes import wait_for_workers

    orc.ensure_ready()
    for worker in workers:
        worker.start()
    wait_for_workers(orc.celery, len(workers), timeout_s=90, processes=workers)
    wanted = set(queues)
    replies = orc.celery.control.inspect(timeout=2.0).active_queues() or {}
    if len(replies) < len(workers):
        raise RuntimeError(f"only {len(replies)} of {len(workers)} workers answered active_queues")
    for worker_name, consumed in replies.items():
        missing = wanted - {q["name"] for q in consumed}
        if missing:
            raise RuntimeError(f"worker {worker_name} does not consume {sorted(missing)}")


# -- what a process costs, and where the figures go -----------------------------------------------

CLOCK_TICKS_PER_S = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def process_cpu_s(pid: int) -> float:
    """utime + stime of one process (all its threads), in seconds; 0 if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS_PER_S


def rss_mb(pid: int) -> float:
    """The resident memory of one process, in MB; 0 if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def free_port() -> int:
    """A TCP port of 127.0.0.1 nothing listens on now (the OS picks it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def own_redis(timeout_s: float = 30.0) -> Iterator[str]:
    """A redis-server of this run's own on a free port, without persistence, for figures that
    read Redis's own statistics (INFO): no other client's commands mix into them. Yields its
    URL once it answers PING; stops it at the end."""
    import shutil
    import subprocess
    import time

    import redis

    exe = shutil.which("redis-server")
    if exe is None:
        raise RuntimeError(
            "redis-server is not on PATH: install Redis, or pass --redis-url to measure on a "
            "running server (its other clients' commands then count in the figures)"
        )
    port = free_port()
    server = subprocess.Popen(
        [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        client = redis.Redis.from_url(url)
        deadline = time.monotonic() + timeout_s
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"redis-server on port {port} exited ({server.returncode})")
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server on port {port} did not answer") from None
                time.sleep(0.05)
        client.close()
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


def write_results(path: Path, args: argparse.Namespace, **figures: Any) -> None:
    """A benchmark's figures as JSON at ``path``: when, on what machine, with which options."""
    path.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": platform.platform(),
        "args": {k: str(v) for k, v in vars(args).items()},
        **figures,
    }
    path.write_text(json.dumps(report, indent=2) + "\n")
