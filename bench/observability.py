"""What tracing costs the step path: the same workflows with OpenTelemetry off and exporting.

    python bench/observability.py [--workflows 100] [--repeat 5]

What runs (see docs/performance.md):

- one process drives five-step sequence workflows on ``offline:echo`` (zero model latency)
  through the real coordinator, step runner, bus and stores, on a fresh PostgreSQL database and
  a Redis key prefix of this run's own (both removed at the end); messages go through an
  in-memory queue instead of a broker, with the headers they would carry, so the broker and
  Celery, which tracing does not touch, add no noise;
- **off**: no endpoint, no provider: what every deployment without a collector runs;
- **exporting**: the OpenTelemetry SDK with a batch processor exporting over OTLP/HTTP to a
  receiver in another process (as a collector beside the workers);
- each round runs N workflows in each mode, back to back, in an order reversed every other round;
  steps/s = 5N / elapsed; the ratio reported is the median of the rounds' own ratios. CPU is this
  process's (user + system) per step, the exporter's background thread included.

Structured logging (with its secret filter) and the Prometheus counters are on in both modes.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import SpanProcessor

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.harness import bench_run  # noqa: E402

STEPS = 5
MODES = ("off", "exporting")
# The collector: an OTLP/HTTP receiver in a process of its own, which says how many spans it got
# when its input closes.
RECEIVER = (
    "import sys\n"
    "from tests.otlp_receiver import OtlpReceiver\n"
    "with OtlpReceiver() as r:\n"
    "    print(r.endpoint, flush=True)\n"
    "    sys.stdin.read()\n"
    "    print(len(r.spans), flush=True)\n"
)


def _parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--workflows", type=int, default=100, help="N per mode per round")
    p.add_argument("--repeat", type=int, default=5, help="rounds")
    p.add_argument(
        "--postgres-url",
        default=os.environ.get(
            "AGENTYARD_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
        ),
    )
    p.add_argument(
        "--redis-url",
        default=os.environ.get("AGENTYARD_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"),
    )
    return p.parse_args()


class _SpanCount(SpanProcessor):
    """A span processor that counts the spans ended (to check they all reached the receiver)."""

    def __init__(self) -> None:
        self.ended = 0

    def on_end(self, span: Any) -> None:
        self.ended += 1


def _team(settings: Any) -> tuple[Any, Any]:
    from orchestration import Agent, Orchestrator, Workflow
    from tests.support import InlineBus

    bus = InlineBus(settings.effective_database_url)
    orc = Orchestrator("bench-otel", settings, bus=bus)
    agents = [f"s{i}" for i in range(1, STEPS + 1)]
    for agent_id in agents:
        orc.register_agent(
            Agent(id=agent_id, model="offline:echo", system_prompt=f"You are {agent_id}.")
        )
    orc.register_workflow(Workflow.sequence("five", agents))
    return orc, bus


def _measure(orc: Any, bus: Any, count: int, tag: str) -> dict[str, float]:
    from tests.support import drain

    cpu, clock = time.process_time(), time.perf_counter()
    runs = [orc.submit("five", f"{tag} topic {i}") for i in range(count)]
    drain(orc, bus, limit=count * (2 * STEPS + 4))
    elapsed, used = time.perf_counter() - clock, time.process_time() - cpu
    unfinished = [run.id for run in runs if run.result().status.value != "succeeded"]
    if unfinished:
        raise SystemExit(f"{len(unfinished)} workflow(s) did not succeed in mode {tag}")
    steps = count * STEPS
    return {"steps_per_s": steps / elapsed, "cpu_ms_per_step": used * 1000 / steps}


def main() -> int:
    args = _parse()
    os.chdir(ROOT)
    with bench_run(args.postgres_url, args.redis_url, stem="bench-otel") as run:
        receiver = subprocess.Popen(
            [sys.executable, "-c", RECEIVER],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert receiver.stdout is not None
            endpoint = receiver.stdout.readline().strip()
            made = _run(args, run.database_url, run.prefix, endpoint)
            received, _ = receiver.communicate(timeout=30)
            print(f"spans made while exporting: {made}; the receiver got {received.strip()}")
        finally:
            if receiver.poll() is None:
                receiver.kill()
    return 0


def _run(args: argparse.Namespace, database_url: str, prefix: str, endpoint: str) -> int:
    """The rounds; returns how many spans the exporting mode made."""
    from storage.settings import Settings
    from workers import tracing

    settings = Settings(
        redis_url=args.redis_url,
        database_url=database_url,
        redis_key_prefix=prefix,
        log_level="INFO",
        log_format="json",
        otel_endpoint=endpoint,
        _env_file=None,
    )
    exporting = tracing.build_provider(settings)
    counted = _SpanCount()
    exporting.add_span_processor(counted)
    providers = {"off": None, "exporting": exporting}
    orc, bus = _team(settings.model_copy(update={"otel_endpoint": None}))
    with open(os.devnull, "w") as quiet, contextlib.redirect_stderr(quiet):
        for mode in MODES:  # warm-up: the schema, the connections, the scripts
            tracing.use_provider(providers[mode])
            _measure(orc, bus, 10, f"warm-{mode}")
        rounds: list[dict[str, dict[str, float]]] = []
        for n in range(args.repeat):
            order = MODES if n % 2 == 0 else tuple(reversed(MODES))
            measured = {}
            for mode in order:
                tracing.use_provider(providers[mode])
                measured[mode] = _measure(orc, bus, args.workflows, f"{mode}-{n}")
            exporting.force_flush()
            rounds.append(measured)
            ratio = measured["exporting"]["steps_per_s"] / measured["off"]["steps_per_s"]
            print(
                f"  round {n + 1} ({order[0]} first): "
                + ", ".join(f"{m} {measured[m]['steps_per_s']:.1f} steps/s" for m in MODES)
                + f", ratio {ratio:.3f}",
                file=sys.__stdout__,
            )
    tracing.use_provider(None)
    exporting.shutdown()
    _print(args, rounds)
    return counted.ended


def _print(args: argparse.Namespace, rounds: list[dict[str, dict[str, float]]]) -> None:
    ratios = [r["exporting"]["steps_per_s"] / r["off"]["steps_per_s"] for r in rounds]

    def median(mode: str, key: str) -> float:
        return statistics.median(r[mode][key] for r in rounds)

    print(
        f"\n{args.workflows} five-step workflows per mode per round, {args.repeat} rounds, "
        "one process"
    )
    print(f"{'':36}{'off':>10}{'exporting':>12}")
    print(
        f"{'steps/s (median round)':36}{median('off', 'steps_per_s'):>10.1f}"
        f"{median('exporting', 'steps_per_s'):>12.1f}"
    )
    print(
        f"{'CPU ms/step, this process':36}{median('off', 'cpu_ms_per_step'):>10.2f}"
        f"{median('exporting', 'cpu_ms_per_step'):>12.2f}"
    )
    print(
        f"exporting / off, median of the rounds' ratios: {statistics.median(ratios):.3f} "
        f"(rounds: {', '.join(f'{r:.3f}' for r in ratios)})"
    )


if __name__ == "__main__":
    raise SystemExit(main())
