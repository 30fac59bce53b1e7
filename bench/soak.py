"""The soak test: half an hour of mixed workflows at a steady rate while a worker is killed every
minute; nothing may be lost and nothing may grow without bound.

    python bench/soak.py [--minutes 30] [--rate 4] [--kill-every 60] [--sample-every 30]

On this machine's PostgreSQL and Redis (a database and key prefix of the run's own), the team of
``bench/soak_team.py`` (a sequence, a loop, a fan-out, a tool loop and an approval gate whose
timeout approves it, on the offline model) runs on two coordinators and two agent workers. Runs
are submitted at ``--rate`` a second, the workflows in turn; every ``--kill-every`` seconds one
worker, drawn at random, is SIGKILLed and started again. Every ``--sample-every`` seconds a line
says: runs submitted, finished and unfinished; the resident memory of each worker process; the
size of each PostgreSQL table; Redis's memory and the keys under the run's prefix.

Then submitting stops, and every run must end ``succeeded`` within ``--drain`` seconds. The
verdicts, each against the second quarter of the run (after the warm-up): no worker's memory,
nor Redis's, nor the Redis keys, more than 1.5 times (and 20 MB, or 2 000 keys) over; the
database's bytes per run no more than 1.5 times. Exits 1 if anything was lost or grew; writes
bench/results/soak.json. ``make soak`` runs it; it is not part of ``make test``.
"""

from __future__ import annotations

import argparse
import itertools
import os
import random
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
    rss_mb,
    write_results,
)

RESULTS = ROOT / "bench" / "results"
TEAM = "bench.soak_team:orc"
ROLES = {
    "coordinator-a": ("--coordinator", "--concurrency", "4"),
    "coordinator-b": ("--coordinator", "--concurrency", "4"),
    "agents-a": ("--all-agents", "--concurrency", "16"),
    "agents-b": ("--all-agents", "--concurrency", "16"),
}
TABLES = (
    "workflows",
    "steps",
    "node_runs",
    "frames",
    "messages",
    "traces",
    "cost_ledger",
    "tool_turns",
    "tool_calls",
    "approvals",
    "dead_letters",
)
GROWTH, MEMORY_SLACK_MB, KEYS_SLACK = 1.5, 20.0, 2000


def _parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--minutes", type=float, default=30.0)
    p.add_argument("--rate", type=float, default=4.0, help="runs submitted a second")
    p.add_argument("--kill-every", type=float, default=60.0, help="seconds between kills")
    p.add_argument("--sample-every", type=float, default=30.0, help="seconds between samples")
    p.add_argument("--drain", type=float, default=300.0, help="seconds for the last runs to end")
    p.add_argument("--seed", type=int, default=20261207)
    add_server_options(p)
    p.add_argument("--output", type=Path, default=RESULTS / "soak.json")
    return p.parse_args()


class Workers:
    """The worker processes by role, each started again under a new name when killed."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self._env, self._logs = env, logs
        self._started: dict[str, int] = {}
        self.by_role: dict[str, Any] = {}

    def start(self, role: str) -> None:
        from workers.processes import WorkerProcess

        self._started[role] = self._started.get(role, 0) + 1
        self.by_role[role] = WorkerProcess(
            TEAM,
            *ROLES[role],
            "--name",
            f"soak-{role}-{self._started[role]}",
            "--loglevel",
            "WARNING",
            env=self._env,
            cwd=ROOT,
            log_path=self._logs / f"soak-{role}.log",
        ).start()

    def kill_and_restart(self, role: str) -> None:
        self.by_role.pop(role).kill()
        self.start(role)

    def stop(self) -> None:
        for worker in self.by_role.values():
            worker.stop(grace_s=20)


def _counts(orc: Any, ids: list[str]) -> dict[str, int]:
    from sqlalchemy import func, text
    from sqlmodel import select

    from storage.db import session_scope
    from storage.models import WorkflowRow

    with session_scope(orc.database_url) as session:
        rows = session.exec(
            select(WorkflowRow.status, func.count()).group_by(WorkflowRow.status)
        ).all()
        sizes = {
            table: int(
                session.exec(  # type: ignore[call-overload]
                    text(f"SELECT pg_total_relation_size('{table}')")
                ).one()[0]
            )
            for table in TABLES
        }
    statuses = {str(status): int(n) for status, n in rows}
    return {"submitted": len(ids), **statuses, **{f"bytes:{t}": b for t, b in sizes.items()}}


def _redis(client: Any, prefix: str) -> dict[str, float]:
    keys = sum(1 for _ in client.scan_iter(match=f"{prefix}*", count=1000))
    return {"used_memory_mb": int(client.info("memory")["used_memory"]) / 2**20, "keys": keys}


def _grew(early: list[float], late: list[float], slack: float) -> bool:
    if not early or not late:
        return False
    return max(late) > max(early) * GROWTH + slack


def main() -> int:
    args = _parse()
    import redis

    rng = random.Random(args.seed)
    samples: list[dict[str, Any]] = []
    kills: dict[str, int] = {}
    ids: list[str] = []
    logs = RESULTS / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    with bench_run(args.postgres_url, args.redis_url, stem="soak") as run:
        env = run.settings(args.redis_url)
        os.environ.update(env)
        import importlib

        team = importlib.import_module("bench.soak_team")
        orc = team.orc
        orc.ensure_ready()
        client = redis.Redis.from_url(args.redis_url)
        workers = Workers(env, logs)
        try:
            for role in ROLES:
                workers.start(role)
            from workers.processes import wait_for_workers

            processes = list(workers.by_role.values())
            wait_for_workers(orc.celery, len(ROLES), timeout_s=120, processes=processes)
            names = itertools.cycle(team.WORKFLOWS)
            began = time.monotonic()
            next_kill = began + args.kill_every
            next_sample = began
            end = began + args.minutes * 60
            while time.monotonic() < end:
                tick = time.monotonic()
                ids.append(orc.submit(next(names), f"soak run {len(ids)}").id)
                if tick >= next_kill:
                    role = rng.choice(list(ROLES))
                    workers.kill_and_restart(role)
                    kills[role] = kills.get(role, 0) + 1
                    next_kill = tick + args.kill_every
                if tick >= next_sample:
                    sample = {
                        "t_s": round(tick - began, 1),
                        **_counts(orc, ids),
                        **_redis(client, run.prefix),
                        **{
                            f"rss_mb:{role}": round(rss_mb(w.pid), 1)
                            for role, w in workers.by_role.items()
                        },
                    }
                    samples.append(sample)
                    print(_line(sample), flush=True)
                    next_sample = tick + args.sample_every
                time.sleep(max(0.0, 1 / args.rate - (time.monotonic() - tick)))
            print("submitting stopped; waiting for the last runs", flush=True)
            deadline = time.monotonic() + args.drain
            while time.monotonic() < deadline:
                counts = _counts(orc, ids)
                if counts.get("succeeded", 0) + _failed(counts) >= len(ids):
                    break
                time.sleep(2)
            final = {
                "t_s": round(time.monotonic() - began, 1),
                **_counts(orc, ids),
                **_redis(client, run.prefix),
            }
            print(_line(final), flush=True)
            final["unfinished"] = _unfinished(orc)
            for described in final["unfinished"]:
                print(f"  unfinished: {described}", flush=True)
        finally:
            workers.stop()
            orc.close()
            client.close()

    verdicts = _verdicts(samples, final, len(ids))
    print()
    print(
        f"{args.minutes:g} min at {args.rate:g} runs/s, a kill every {args.kill_every:g} s "
        f"({sum(kills.values())} kills: {kills})"
    )
    for name, (ok, said) in verdicts.items():
        print(f"  {'ok  ' if ok else 'FAIL'} {name}: {said}")
    write_results(
        args.output,
        args,
        kills=kills,
        samples=samples,
        final=final,
        verdicts={k: {"ok": ok, "said": said} for k, (ok, said) in verdicts.items()},
    )
    return 0 if all(ok for ok, _ in verdicts.values()) else 1


def _unfinished(orc: Any, most: int = 20) -> list[str]:
    """What each run still unfinished is waiting on: its workflow, status, and every step's
    node, status, attempt, error kind and lease (at most ``most`` runs)."""
    from sqlmodel import col, select

    from storage.db import session_scope
    from storage.models import StepRow, WorkflowRow

    with session_scope(orc.database_url) as session:
        runs = session.exec(
            select(WorkflowRow)
            .where(col(WorkflowRow.finished_at).is_(None))
            .order_by(col(WorkflowRow.created_at))
            .limit(most)
        ).all()
        said = []
        for run in runs:
            steps = session.exec(
                select(StepRow).where(StepRow.workflow_id == run.id).order_by(col(StepRow.position))
            ).all()
            described = "; ".join(
                f"{s.node or s.agent_id} {s.status} attempt {s.attempt} "
                f"{s.error_kind or ''} lease {s.lease_until} due {s.due_at}"
                for s in steps
            )
            said.append(f"{run.id} {run.name} {run.status}: {described}")
    return said


def _failed(counts: dict[str, int]) -> int:
    return sum(counts.get(s, 0) for s in ("failed", "budget_exceeded", "timed_out", "rejected"))


def _line(sample: dict[str, Any]) -> str:
    database_mb = sum(v for k, v in sample.items() if k.startswith("bytes:")) / 2**20
    rss = " ".join(
        f"{k.split(':', 1)[1]} {v:.0f}" for k, v in sample.items() if k.startswith("rss_mb:")
    )
    return (
        f"t={sample['t_s']:7.1f}s submitted {sample['submitted']:6d} succeeded "
        f"{sample.get('succeeded', 0):6d} running {sample.get('running', 0):4d} | database "
        f"{database_mb:7.1f} MB | Redis {sample['used_memory_mb']:6.1f} MB, {sample['keys']} keys"
        + (f" | RSS MB: {rss}" if rss else "")
    )


def _verdicts(
    samples: list[dict[str, Any]], final: dict[str, Any], submitted: int
) -> dict[str, tuple[bool, str]]:
    quarter = max(1, len(samples) // 4)
    early, late = samples[quarter : 2 * quarter], samples[-quarter:]
    verdicts: dict[str, tuple[bool, str]] = {}
    succeeded = int(final.get("succeeded", 0))
    verdicts["nothing lost"] = (
        succeeded == submitted,
        f"{succeeded} of {submitted} runs succeeded; the rest: "
        + str({k: v for k, v in final.items() if k in ("running", "pending", "waiting_approval")})
        + f", failed {_failed(final)}",
    )
    roles = sorted({k for s in samples for k in s if k.startswith("rss_mb:")})
    grown = [
        role.split(":", 1)[1]
        for role in roles
        if _grew(
            [s[role] for s in early if role in s],
            [s[role] for s in late if role in s],
            MEMORY_SLACK_MB,
        )
    ]
    verdicts["worker memory bounded"] = (
        not grown,
        "grew: " + ", ".join(grown)
        if grown
        else "each process's RSS at the end within 1.5x of after the warm-up",
    )
    redis_mb = [s["used_memory_mb"] for s in early], [s["used_memory_mb"] for s in late]
    verdicts["Redis memory bounded"] = (
        not _grew(*redis_mb, MEMORY_SLACK_MB),
        f"{max(redis_mb[0], default=0):.1f} MB after the warm-up, "
        f"{max(redis_mb[1], default=0):.1f} MB at the end",
    )
    keys = [s["keys"] for s in early], [s["keys"] for s in late]
    verdicts["Redis keys bounded"] = (
        not _grew(*keys, KEYS_SLACK),
        f"{max(keys[0], default=0)} keys after the warm-up, {max(keys[1], default=0)} at the end",
    )
    per_run = [_bytes_per_run(a, b) for a, b in ((samples[0], early[-1]), (early[-1], late[-1]))]
    verdicts["database bytes per run steady"] = (
        per_run[1] <= per_run[0] * GROWTH,
        f"{per_run[0] / 1024:.1f} KB a run in the first half, {per_run[1] / 1024:.1f} KB later "
        "(the audit trail keeps every run: the database grows with the runs, not faster)",
    )
    return verdicts


def _bytes_per_run(a: dict[str, Any], b: dict[str, Any]) -> float:
    size = sum(v for k, v in b.items() if k.startswith("bytes:")) - sum(
        v for k, v in a.items() if k.startswith("bytes:")
    )
    runs = b["submitted"] - a["submitted"]
    return size / runs if runs > 0 else 0.0


if __name__ == "__main__":
    raise SystemExit(main())
