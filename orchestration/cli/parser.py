"""The command line of ``agentyard``: every command, its arguments and their help."""

from __future__ import annotations

import argparse
from datetime import timedelta

from bus import priorities
from orchestration.cli import arguments, operations, runs, services, tools

DESCRIPTION = (
    "The ``agentyard`` command: workers, beat, Flower, running and inspecting workflows, the demo."
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="agentyard", description=DESCRIPTION)
    commands = parser.add_subparsers(dest="command", required=True)

    worker = commands.add_parser("worker", help="run a worker for some agents or the coordinator")
    worker.add_argument(
        "team", help="the orchestrator, as module:attribute (e.g. examples.team:orc)"
    )
    worker.add_argument("--agents", help="comma-separated agent ids; one queue agent.<id> each")
    worker.add_argument("--all-agents", action="store_true", help="serve every registered agent")
    worker.add_argument(
        "--coordinator",
        action="store_true",
        help="serve the coordinator queue and run the recovery sweeps (each by one coordinator at "
        "a time, under a lease)",
    )
    worker.add_argument(
        "--beat",
        action="store_true",
        help="also run Celery beat, which sends the sweeps as periodic tasks (optional: the "
        "coordinators sweep on their own)",
    )
    worker.add_argument("--concurrency", type=int, default=8)
    worker.add_argument(
        "--pool",
        default="threads",
        choices=["threads", "prefork", "solo"],
        help="threads suits agents: model calls wait on the network",
    )
    worker.add_argument("--name", help="worker name (default from what it serves)")
    worker.add_argument("--loglevel", default="INFO")
    worker.add_argument(
        "--metrics-port",
        type=arguments.port,
        help="serve Prometheus /metrics on this port (0: any free port, logged); "
        "default AGENTYARD_METRICS_PORT, unset: none",
    )
    worker.set_defaults(func=services.worker)

    beat = commands.add_parser(
        "beat",
        help="run Celery beat, sending the sweeps as periodic tasks (optional: every coordinator "
        "sweeps on its own)",
    )
    beat.add_argument("team")
    beat.add_argument("--loglevel", default="INFO")
    beat.set_defaults(func=services.beat)

    flower = commands.add_parser(
        "flower",
        help="start Flower with the team's broker options, events on, and the basic auth of "
        "AGENTYARD_FLOWER_BASIC_AUTH",
    )
    flower.add_argument("team")
    flower.add_argument("--port", type=int, default=5555, help="port to serve on (5555)")
    flower.add_argument(
        "--address", default="127.0.0.1", help="interface to serve on (0.0.0.0: every one)"
    )
    flower.set_defaults(func=services.flower)

    run = commands.add_parser("run", help="enqueue one workflow and follow it")
    run.add_argument("team")
    run.add_argument("workflow")
    run.add_argument("input")
    run.add_argument(
        "--priority",
        type=arguments.priority,
        default=priorities.DEFAULT,
        help="0..9, 9 most urgent",
    )
    run.add_argument("--timeout", type=float, default=600.0, help="seconds to follow it")
    run.add_argument("--no-wait", action="store_true", help="print the run id and return")
    run.set_defaults(func=runs.run)

    status = commands.add_parser("status", help="show one run")
    status.add_argument("run_id")
    status.add_argument("--brief", action="store_true", help="leave out the output")
    status.set_defaults(func=runs.status)

    messages = commands.add_parser(
        "messages", help="a run's messages in order, who acknowledged them, delivered or not"
    )
    messages.add_argument("run_id")
    messages.set_defaults(func=runs.messages)

    deadletters = commands.add_parser(
        "deadletters",
        help="the latest dead letters; `deadletters TEAM --republish ID` publishes one again",
    )
    deadletters.add_argument(
        "team", nargs="?", help="the orchestrator, as module:attribute (needed by --republish)"
    )
    deadletters.add_argument(
        "--limit", type=arguments.positive, default=50, help="how many to list (default 50)"
    )
    deadletters.add_argument(
        "--republish",
        metavar="ID",
        help="publish the message of dead letter ID again to its recipient, as the next attempt",
    )
    deadletters.set_defaults(func=operations.deadletters)

    costs = commands.add_parser(
        "costs",
        help="spend per agent, workflow type and day, and what is reserved now; "
        "`costs rebuild TEAM` restores the Redis spend counters from the ledger",
    )
    costs.add_argument("words", nargs="+", metavar="[show|rebuild] TEAM")
    costs.add_argument("--days", type=int, default=7, help="how many days back (show)")
    costs.set_defaults(func=operations.costs)

    breakers = commands.add_parser("breakers", help="each agent's circuit breaker, as it is now")
    breakers.add_argument("team")
    breakers.set_defaults(func=operations.breakers)

    trace = commands.add_parser(
        "trace",
        help="one run as a tree: each step with its agent, status, latency, tokens, cost, "
        "retries and fallbacks, and each attempt under it",
    )
    trace.add_argument(
        "team", nargs="?", help="the orchestrator, as module:attribute (its settings are used)"
    )
    trace.add_argument("run_id")
    trace.add_argument(
        "--show-io",
        action="store_true",
        help="also print each call's prompt and output, shortened (they are on the audit trail)",
    )
    trace.set_defaults(func=runs.trace)

    graph = commands.add_parser(
        "graph", help="one run's dependency graph from its trace records: mermaid, dot or JSON"
    )
    graph.add_argument(
        "team", nargs="?", help="the orchestrator, as module:attribute (its settings are used)"
    )
    graph.add_argument("run_id")
    graph.add_argument("--format", choices=["mermaid", "dot", "json"], default="mermaid")
    graph.add_argument("--output", metavar="FILE", help="write it to FILE instead of stdout")
    graph.set_defaults(func=runs.graph)

    find = commands.add_parser(
        "find",
        help="runs where an agent cost more than $X, or slower than Y seconds "
        "(conditions given together must all hold)",
    )
    find.add_argument(
        "team", nargs="?", help="the orchestrator, as module:attribute; its runs only"
    )
    find.add_argument("--agent", help="an agent id: runs it made calls in, with what they cost")
    find.add_argument(
        "--cost-over",
        type=arguments.usd_amount,
        metavar="USD",
        help="the agent's calls in the run (or, without --agent, the whole run) cost more",
    )
    find.add_argument(
        "--slower-than",
        type=arguments.seconds,
        metavar="SECONDS",
        help="finished: took longer; still under way: has run longer so far",
    )
    find.add_argument("--workflow", help="runs of this workflow type only")
    find.add_argument(
        "--since",
        type=arguments.since,
        default=timedelta(days=7),
        help="runs created in this window: 7d (default), 12h, 30m, or since a date (UTC)",
    )
    find.add_argument("--limit", type=arguments.positive, default=50, help="at most this many (50)")
    find.add_argument("--json", action="store_true", help="a JSON list instead of a table")
    find.set_defaults(func=runs.find)

    migrate = commands.add_parser("migrate", help="create or upgrade the database schema")
    migrate.set_defaults(func=tools.migrate)

    stub = commands.add_parser("stub-anthropic", help="a local server speaking the Messages API")
    stub.add_argument("--host", default="127.0.0.1")
    stub.add_argument("--port", type=int, default=8765)
    stub.add_argument("--latency", type=float, default=0.0, help="seconds per response")
    stub.set_defaults(func=tools.stub_anthropic)

    demo = commands.add_parser("demo", help="run the example team end to end, no servers needed")
    demo.add_argument("--team", default="examples.team:orc")
    demo.add_argument("--workflow", default="research")
    demo.add_argument("--topic", default="the history of the electric telegraph")
    demo.set_defaults(func=tools.demo)
    return parser
