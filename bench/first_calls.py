"""The first calls of a freshly started agent worker against the calls it makes once warm.

    python bench/first_calls.py [--rounds 3] [--calls 96] [--concurrency 32] [--latency 0.2]

What runs, each round:

- ``--calls`` one-step workflows are submitted while no worker runs (a backlog, as a restarted
  pod finds one), to ``bench/first_calls_team.py``'s agent on ``claude-haiku-4-5``, called through
  the real SDK against the stub server (in this process, answering in ``--latency`` seconds);
- then ONE fresh ``agentyard worker --pool threads --concurrency N`` process starts and works
  the backlog off, with its warm-up on, then (next round) off (``AGENTYARD_WORKER_WARMUP``);
- each call's latency as the worker measured it (the trace rows), from the call's start to its
  answer parsed: the first ``--concurrency`` calls (the ones the cold worker takes at once)
  against the rest, and how long the worker took from its start to its first answer.

The stub answers every call in the same time, so any difference is the worker's own. Prints a
table and writes bench/results/first_calls.json.
"""

from __future__ import annotations

import argparse
import os
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
    worker_processes,
    write_results,
)

RESULTS = ROOT / "bench" / "results"
TEAM = "bench.first_calls_team:orc"


def _parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--rounds", type=int, default=3, help="rounds; each starts a worker per mode")
    p.add_argument("--calls", type=int, default=96, help="workflows in each round's backlog")
    p.add_argument("--concurrency", type=int, default=32, help="threads of the worker")
    p.add_argument("--latency", type=float, default=0.2, help="the stub's answer time, seconds")
    p.add_argument("--timeout", type=float, default=60.0, help="the agent's deadline, seconds")
    p.add_argument(
        "--modes",
        default="on,off",
        help="AGENTYARD_WORKER_WARMUP values to compare, in order (a build without the setting "
        "ignores it)",
    )
    add_server_options(p)
    p.add_argument("--output", type=Path, default=RESULTS / "first_calls.json")
    return p.parse_args()


def _calls_of(orc: Any, ids: list[str]) -> list[tuple[datetime, float, str]]:
    """(started_at, latency ms, outcome) of every call of the runs ``ids``, oldest first."""
    from sqlmodel import col, select

    from storage.db import session_scope
    from storage.models import TraceRow

    with session_scope(orc.database_url) as session:
        rows = session.exec(
            select(TraceRow.started_at, TraceRow.latency_ms, TraceRow.outcome)
            .where(col(TraceRow.workflow_id).in_(ids))
            .order_by(col(TraceRow.started_at))
        ).all()
    return [(started, float(latency), str(outcome)) for started, latency, outcome in rows]


def _unfinished(orc: Any, ids: list[str]) -> int:
    from sqlalchemy import func
    from sqlmodel import col, select

    from storage.db import session_scope
    from storage.models import WorkflowRow

    with session_scope(orc.database_url) as session:
        return int(
            session.exec(
                select(func.count())
                .select_from(WorkflowRow)
                .where(col(WorkflowRow.id).in_(ids), col(WorkflowRow.finished_at).is_(None))
            ).one()
        )


def _stacks_of(pid: int) -> str:
    """What every thread of process ``pid`` is doing, if py-spy is installed."""
    import shutil
    import subprocess

    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        return "(install py-spy to see them)"
    dumped = subprocess.run([spy, "dump", "--pid", str(pid)], capture_output=True, text=True)
    return "\n" + (dumped.stdout or dumped.stderr)


def _summary(latencies: list[float]) -> dict[str, float]:
    ordered = sorted(latencies)
    return {
        "n": len(ordered),
        "p50_ms": round(statistics.median(ordered), 1),
        "p90_ms": round(ordered[int(0.9 * (len(ordered) - 1))], 1),
        "max_ms": round(ordered[-1], 1),
    }


def one_round(
    orc: Any, args: argparse.Namespace, env: dict[str, str], mode: str, tag: str, logs: Path
) -> dict[str, Any]:
    ids = [orc.submit("answer", f"first calls {tag} {n}").id for n in range(args.calls)]
    worker = worker_processes(
        TEAM,
        ["--agents", "responder"],
        count=1,
        concurrency=args.concurrency,
        loglevel="WARNING",
        name=f"first-{tag}-",
        env={**env, "AGENTYARD_WORKER_WARMUP": mode},
        logs=logs,
    )[0]
    started = datetime.now(UTC)
    worker.start()
    try:
        deadline = time.monotonic() + 300
        while _unfinished(orc, ids):
            if not worker.alive():
                raise RuntimeError(f"the worker of round {tag} exited early")
            if time.monotonic() > deadline:
                calls = _calls_of(orc, ids)
                raise TimeoutError(
                    f"round {tag}: {_unfinished(orc, ids)} runs unfinished after 300 s, "
                    f"{len(calls)} calls on record; the worker's threads: " + _stacks_of(worker.pid)
                )
            time.sleep(0.2)
    finally:
        worker.stop(grace_s=15)
    calls = _calls_of(orc, ids)
    first, rest = calls[: args.concurrency], calls[args.concurrency :]
    outcomes: dict[str, int] = {}
    for _, _, outcome in calls:
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    first_answer_s = min(s.timestamp() + ms / 1000 for s, ms, _ in calls) - started.timestamp()
    return {
        "mode": mode,
        "first": _summary([ms for _, ms, _ in first]),
        "warm": _summary([ms for _, ms, _ in rest]),
        "outcomes": outcomes,
        "start_to_first_answer_s": round(first_answer_s, 2),
    }


def main() -> int:
    args = _parse()
    modes = [m for m in args.modes.split(",") if m]
    from workers.stub_anthropic import StubAnthropicServer

    results: list[dict[str, Any]] = []
    with (
        StubAnthropicServer(latency_s=args.latency) as stub,
        bench_run(args.postgres_url, args.redis_url, stem="first") as run,
    ):
        env = run.settings(
            args.redis_url,
            AGENTYARD_ANTHROPIC_BASE_URL=stub.base_url,
            AGENTYARD_ANTHROPIC_API_KEY="sk-bench",
            BENCH_TIMEOUT_S=str(args.timeout),
        )
        os.environ.update(env)
        import importlib

        team = importlib.import_module("bench.first_calls_team")
        orc = team.orc
        orc.ensure_ready()
        logs = RESULTS / "logs"
        for number in range(args.rounds):
            for mode in modes:
                result = one_round(orc, args, env, mode, f"{number}{mode}", logs)
                results.append(result)
                print(
                    f"round {number + 1} warm-up {mode:>3}: first {args.concurrency} calls "
                    f"p50 {result['first']['p50_ms']:7.1f} ms max {result['first']['max_ms']:7.1f}"
                    f" ms | later calls p50 {result['warm']['p50_ms']:7.1f} ms max "
                    f"{result['warm']['max_ms']:7.1f} ms | start to first answer "
                    f"{result['start_to_first_answer_s']:.2f} s | {result['outcomes']}",
                    flush=True,
                )
        orc.close()

    print()
    print(
        f"stub latency {args.latency * 1000:.0f} ms, {args.concurrency} threads, "
        f"{args.calls} calls a round"
    )
    print(
        "| warm-up | first calls p50 / max (ms) | later calls p50 / max (ms) "
        "| first p50 / later p50 | start to first answer (s) |"
    )
    print("| --- | --- | --- | --- | --- |")
    summary: dict[str, Any] = {}
    for mode in modes:
        mine = [r for r in results if r["mode"] == mode]
        first_p50 = statistics.median(r["first"]["p50_ms"] for r in mine)
        first_max = statistics.median(r["first"]["max_ms"] for r in mine)
        warm_p50 = statistics.median(r["warm"]["p50_ms"] for r in mine)
        warm_max = statistics.median(r["warm"]["max_ms"] for r in mine)
        start = statistics.median(r["start_to_first_answer_s"] for r in mine)
        ratio = first_p50 / warm_p50
        summary[mode] = {
            "first_p50_ms": first_p50,
            "first_max_ms": first_max,
            "warm_p50_ms": warm_p50,
            "warm_max_ms": warm_max,
            "first_over_warm": round(ratio, 2),
            "start_to_first_answer_s": start,
        }
        print(
            f"| {mode} | {first_p50:.0f} / {first_max:.0f} | {warm_p50:.0f} / {warm_max:.0f} | "
            f"{ratio:.2f} | {start:.2f} |"
        )
    write_results(args.output, args, rounds=results, summary=summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
