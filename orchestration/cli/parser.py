"""The command line of ``agentyard``: every command, its arguments and their help."""

from __future__ import annotations

import argparse
from datetime import timedelta
from typing import NoReturn

from bus import priorities
from orchestration.cli import approvals, arguments, exit_codes, operations, runs, services, tools
from orchestration.cli.exit_codes import ExitCode

DESCRIPTION = (
    "The ``agentyard`` command: workers, beat, Flower, running and inspecting workflows, "
    "deciding approvals, the demo."
)

TEAM_HELP = "the orchestrator, as module:attribute (e.g. examples.team:orc)"
DATABASE_TEAM_HELP = (
    "the orchestrator, as module:attribute, whose settings name the database "
    "(default: the AGENTYARD_* settings of the environment)"
)

RUN_EPILOG = """\
the input:
  INPUT is the workflow's input text. With - it is read from standard input
  instead, as UTF-8 (input that is not UTF-8 is refused, naming the offset of
  the first byte that is not): a document of any size, which a command line
  cannot carry. For example:
    agentyard run examples.team:orc research - < report.md

exit codes:
  0 the run succeeded (with --no-wait: it was submitted); 1 it ended failed,
  budget_exceeded, timed_out or rejected; 6 --timeout passed first, and the run
  goes on; `agentyard --help` lists the others"""


class Parser(argparse.ArgumentParser):
    """argparse, refusing a command line in one line on stderr, ``agentyard: <what is wrong>``,
    with the exit code USAGE; its sub-parsers are of this class too."""

    def error(self, message: str) -> NoReturn:
        command = self.prog.removeprefix("agentyard").strip()
        where = f"{command}: " if command else ""
        self.exit(ExitCode.USAGE, f"agentyard: {where}{message}; see `{self.prog} --help`\n")


def _team(command: argparse.ArgumentParser, help: str = TEAM_HELP, optional: bool = False) -> None:
    command.add_argument(
        "team", metavar="TEAM", type=arguments.team, nargs="?" if optional else None, help=help
    )


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="agentyard",
        description=DESCRIPTION,
        epilog=exit_codes.table(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)

    worker = commands.add_parser("worker", help="run a worker for some agents or the coordinator")
    _team(worker)
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
    worker.add_argument(
        "--concurrency",
        type=arguments.positive,
        default=8,
        help="threads (or processes) taking tasks at once, at least 1 (8)",
    )
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
    _team(beat)
    beat.add_argument("--loglevel", default="INFO")
    beat.set_defaults(func=services.beat)

    flower = commands.add_parser(
        "flower",
        help="start Flower with the team's broker options, events on, and the basic auth of "
        "AGENTYARD_FLOWER_BASIC_AUTH",
    )
    _team(flower)
    flower.add_argument("--port", type=arguments.port, default=5555, help="port to serve on (5555)")
    flower.add_argument(
        "--address", default="127.0.0.1", help="interface to serve on (0.0.0.0: every one)"
    )
    flower.set_defaults(func=services.flower)

    run = commands.add_parser(
        "run",
        help="enqueue one workflow and follow it (INPUT -: read it from standard input)",
        epilog=RUN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _team(run)
    run.add_argument("workflow", metavar="WORKFLOW", help="the workflow's name")
    run.add_argument(
        "input",
        metavar="INPUT",
        help="the input text; - reads it from standard input (UTF-8), e.g. a long document",
    )
    run.add_argument(
        "--priority",
        type=arguments.priority,
        default=priorities.DEFAULT,
        help="0..9, 9 most urgent",
    )
    run.add_argument(
        "--timeout",
        type=arguments.seconds_over_zero,
        default=600.0,
        help="seconds to follow it, over 0 (600); the run goes on after it",
    )
    run.add_argument("--no-wait", action="store_true", help="print the run id and return")
    run.set_defaults(func=runs.run)

    status = commands.add_parser("status", help="show one run")
    _team(status, DATABASE_TEAM_HELP, optional=True)
    status.add_argument("run_id", metavar="RUN_ID")
    status.add_argument("--brief", action="store_true", help="leave out the output")
    status.set_defaults(func=runs.status)

    messages = commands.add_parser(
        "messages", help="a run's messages in order, who acknowledged them, delivered or not"
    )
    _team(messages, DATABASE_TEAM_HELP, optional=True)
    messages.add_argument("run_id", metavar="RUN_ID")
    messages.set_defaults(func=runs.messages)

    deadletters = commands.add_parser(
        "deadletters",
        help="the latest dead letters; `deadletters TEAM --republish ID` publishes one again",
    )
    _team(deadletters, f"{DATABASE_TEAM_HELP}; needed by --republish", optional=True)
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
    costs.add_argument(
        "action",
        nargs="?",
        choices=["show", "rebuild"],
        default="show",
        help="show the spend (the default), or rebuild the Redis spend counters from the ledger",
    )
    _team(costs)
    costs.add_argument(
        "--days", type=arguments.positive, default=7, help="how many days back, at least 1 (7)"
    )
    costs.set_defaults(func=operations.costs)

    breakers = commands.add_parser("breakers", help="each agent's circuit breaker, as it is now")
    _team(breakers)
    breakers.set_defaults(func=operations.breakers)

    trace = commands.add_parser(
        "trace",
        help="one run as a tree: each step with its agent, status, latency, tokens, cost, "
        "retries and fallbacks, and each attempt under it",
    )
    _team(trace, DATABASE_TEAM_HELP, optional=True)
    trace.add_argument("run_id", metavar="RUN_ID")
    trace.add_argument(
        "--show-io",
        action="store_true",
        help="also print each call's prompt and output, shortened (they are on the audit trail)",
    )
    trace.set_defaults(func=runs.trace)

    graph = commands.add_parser(
        "graph", help="one run's dependency graph from its trace records: mermaid, dot or JSON"
    )
    _team(graph, DATABASE_TEAM_HELP, optional=True)
    graph.add_argument("run_id", metavar="RUN_ID")
    graph.add_argument("--format", choices=["mermaid", "dot", "json"], default="mermaid")
    graph.add_argument("--output", metavar="FILE", help="write it to FILE instead of stdout")
    graph.set_defaults(func=runs.graph)

    find = commands.add_parser(
        "find",
        help="runs where an agent cost more than $X, or slower than Y seconds "
        "(conditions given together must all hold)",
    )
    _team(find, f"{DATABASE_TEAM_HELP}; its runs only", optional=True)
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

    waiting = commands.add_parser(
        "approvals",
        help="what waits for a person's approval: each run's id, gate (or tool), what is to be "
        "approved and its hash",
    )
    _team(waiting, f"{DATABASE_TEAM_HELP}; its runs only", optional=True)
    waiting.add_argument(
        "--full", action="store_true", help="print what is to be approved in full, not cut"
    )
    waiting.add_argument("--json", action="store_true", help="a JSON list instead of text")
    waiting.set_defaults(func=approvals.approvals)
    for name, decide, what in (
        (
            "approve",
            approvals.approve,
            "approve what GATE waits to pass on (the run goes on), or the call of the tool GATE "
            "that waits (it runs)",
        ),
        (
            "reject",
            approvals.reject,
            "reject what GATE waits to pass on (the run ends rejected), or the call of the tool "
            "GATE that waits (it does not run; the model is told so)",
        ),
    ):
        decision = commands.add_parser(
            name, help=f"{what} (exits non-zero, writing nothing, when it is refused)"
        )
        _team(decision, DATABASE_TEAM_HELP, optional=True)
        decision.add_argument("run_id", metavar="RUN_ID")
        decision.add_argument(
            "gate", metavar="GATE", help="the gate's name, or the tool's whose call waits"
        )
        decision.add_argument("--by", required=True, help="who decides (on the audit trail)")
        decision.add_argument("--note", help="why, for the audit trail")
        decision.add_argument(
            "--hash",
            help="the hash (its first 8 characters or more) of what you decide about, as "
            "`agentyard approvals` shows it: refused if what waits is something else",
        )
        decision.add_argument(
            "--scope", help="the frame the gate waits in, when it waits in several (a fan-out)"
        )
        decision.set_defaults(func=decide)

    migrate = commands.add_parser("migrate", help="create or upgrade the database schema")
    migrate.set_defaults(func=tools.migrate)

    stub = commands.add_parser("stub-anthropic", help="a local server speaking the Messages API")
    stub.add_argument("--host", default="127.0.0.1")
    stub.add_argument("--port", type=arguments.port, default=8765, help="0..65535 (8765)")
    stub.add_argument(
        "--latency", type=arguments.seconds, default=0.0, help="seconds per response, 0 or more"
    )
    stub.add_argument(
        "--min-cache-tokens",
        type=int,
        default=1024,
        help="the shortest prefix its prompt cache keeps, in tokens (1024)",
    )
    stub.add_argument(
        "--asyncio",
        action="store_true",
        help="serve on one asyncio event loop, which holds thousands of requests open at once "
        "(for benchmarks of calls in flight), rather than a thread per connection",
    )
    stub.set_defaults(func=tools.stub_anthropic)

    demo = commands.add_parser("demo", help="run the example team end to end, no servers needed")
    demo.add_argument("--team", type=arguments.team, default="examples.team:orc", help=TEAM_HELP)
    demo.add_argument("--workflow", default="research")
    demo.add_argument("--topic", default="the history of the electric telegraph")
    demo.set_defaults(func=tools.demo)
    return parser
