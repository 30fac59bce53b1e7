"""The long-running processes of a team: ``worker``, ``beat`` and ``flower``."""

from __future__ import annotations

import argparse
import socket

from bus.routing import COORDINATOR_QUEUE
from orchestration.cli.exit_codes import ExitCode
from storage.errors import InvalidRequest


def worker(args: argparse.Namespace) -> ExitCode:
    from orchestration.loader import load_orchestrator

    orc = load_orchestrator(args.team)
    queues: list[str] = []
    if args.coordinator:
        queues.append(COORDINATOR_QUEUE)
    agents = [a for a in (args.agents or "").split(",") if a]
    if args.all_agents:
        agents = sorted(orc.team.agents)
    for agent_id in agents:
        queues.append(orc.team.agent(agent_id).queue)
    if not queues:
        raise InvalidRequest(
            "say what this worker serves: --agents a,b, --all-agents, or --coordinator"
        )
    orc.ensure_ready()
    name = args.name or f"{'coordinator' if args.coordinator else 'agents'}-{'-'.join(agents)[:40]}"
    argv = [
        "worker",
        "--queues",
        ",".join(queues),
        "--pool",
        args.pool,
        "--concurrency",
        str(args.concurrency),
        "--loglevel",
        args.loglevel,
        "--hostname",
        f"{name}@{socket.gethostname()}",
    ]
    if args.beat:
        argv += ["--beat", "--schedule", str(orc.settings.home / "beat-schedule")]
        orc.settings.home.mkdir(parents=True, exist_ok=True)
    if args.metrics_port is not None:
        orc.serve_metrics(args.metrics_port)  # AGENTYARD_METRICS_PORT is served as it starts
    orc.celery.worker_main(argv)
    return ExitCode.OK


def beat(args: argparse.Namespace) -> ExitCode:
    from orchestration.loader import load_orchestrator
    from workers.logging import writes_json

    orc = load_orchestrator(args.team)
    orc.settings.home.mkdir(parents=True, exist_ok=True)
    orc.celery.start(
        [
            *(["--quiet"] if writes_json() else []),  # JSON lines only: no banner
            "beat",
            "--loglevel",
            args.loglevel,
            "--schedule",
            str(orc.settings.home / "beat-schedule"),
        ]
    )
    return ExitCode.OK


def flower(args: argparse.Namespace) -> ExitCode:
    from orchestration.loader import load_orchestrator
    from workers.flower import flower_launch, run_flower

    orc = load_orchestrator(args.team)
    run_flower(orc.celery, flower_launch(orc.settings, args.port, args.address))
    return ExitCode.OK
