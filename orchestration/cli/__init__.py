"""The ``agentyard`` command: workers, beat, Flower, running and inspecting workflows, the demo."""

from __future__ import annotations

import argparse
import json
import math
import socket
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from bus import priorities
from bus.routing import COORDINATOR_QUEUE
from storage.errors import AgentyardError, WaitTimeout

EXIT_FAILED = 1
EXIT_USAGE = 2


def _worker(args: argparse.Namespace) -> int:
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
        print(
            "say what this worker serves: --agents a,b, --all-agents, or --coordinator",
            file=sys.stderr,
        )
        return EXIT_USAGE
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
    return 0


def _beat(args: argparse.Namespace) -> int:
    from orchestration.loader import load_orchestrator

    orc = load_orchestrator(args.team)
    orc.settings.home.mkdir(parents=True, exist_ok=True)
    orc.celery.start(
        [
            "beat",
            "--loglevel",
            args.loglevel,
            "--schedule",
            str(orc.settings.home / "beat-schedule"),
        ]
    )
    return 0


def _flower(args: argparse.Namespace) -> int:
    from orchestration.loader import load_orchestrator
    from workers.flower import flower_launch, run_flower

    orc = load_orchestrator(args.team)
    run_flower(orc.celery, flower_launch(orc.settings, args.port, args.address))
    return 0


def _run(args: argparse.Namespace) -> int:
    from orchestration.loader import load_orchestrator
    from orchestration.report import ProgressPrinter, format_result

    orc = load_orchestrator(args.team)
    run = orc.submit(args.workflow, args.input, priority=args.priority)
    print(f"submitted run {run.id}")
    if args.no_wait:
        return 0
    result = run.wait(timeout=args.timeout, on_progress=ProgressPrinter())
    print(format_result(result))
    return 0 if result.status.value == "succeeded" else EXIT_FAILED


def _status(args: argparse.Namespace) -> int:
    from orchestration.report import format_result
    from orchestration.results import load_result
    from storage.db import migrate
    from storage.settings import Settings

    url = Settings().effective_database_url
    migrate(url)
    print(format_result(load_result(url, args.run_id), show_output=not args.brief))
    return 0


def _messages(args: argparse.Namespace) -> int:
    from bus.message_log import messages_of
    from orchestration.report import format_messages
    from storage.db import migrate
    from storage.errors import RunNotFound
    from storage.settings import Settings

    url = Settings().effective_database_url
    migrate(url)
    try:
        messages = messages_of(url, args.run_id)
    except RunNotFound as exc:
        print(f"agentyard: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(format_messages(args.run_id, messages))
    return 0


def _deadletters(args: argparse.Namespace) -> int:
    from bus.dead_letters import DeadLetters, republish
    from orchestration.loader import load_orchestrator
    from orchestration.report import format_dead_letters
    from storage.db import migrate
    from storage.errors import InvalidRequest
    from storage.settings import Settings

    if args.republish is not None and args.team is None:
        print(
            "usage: agentyard deadletters TEAM --republish ID: publishing again needs the team "
            "(module:orchestrator), whose bus sends the message",
            file=sys.stderr,
        )
        return EXIT_USAGE
    orc = load_orchestrator(args.team) if args.team else None
    if orc is not None:
        orc.ensure_ready()
        url = orc.database_url
    else:
        url = Settings().effective_database_url
        migrate(url)
    if orc is None or args.republish is None:
        print(format_dead_letters(DeadLetters(url).latest(args.limit), args.limit))
        return 0
    try:
        done = republish(orc.bus, url, args.republish)
    except InvalidRequest as exc:
        print(f"agentyard: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if done.sent:
        print(
            f"published message {done.message_id} again to {done.recipient} as attempt "
            f"{done.attempt} (priority {done.priority}); dead letter {done.dead_letter_id} is "
            "marked republished"
        )
    else:
        print(
            f"message {done.message_id} was not sent: {done.recipient} acknowledged it "
            f"meanwhile; dead letter {done.dead_letter_id} is marked republished"
        )
    return 0


def _database_of(team: str | None) -> tuple[str, str | None]:
    """The database to read runs from, and the team's name: from the team's orchestrator when
    one is named (module:attribute), else from the environment's settings."""
    if team is not None:
        from orchestration.loader import load_orchestrator

        orc = load_orchestrator(team)
        orc.ensure_ready()
        return orc.database_url, orc.name
    from storage.db import migrate
    from storage.settings import Settings

    url = Settings().effective_database_url
    migrate(url)
    return url, None


def _trace(args: argparse.Namespace) -> int:
    from orchestration.run_trace import load_run_trace
    from orchestration.trace_report import console_for, trace_tree
    from storage.errors import RunNotFound

    url, _ = _database_of(args.team)
    try:
        run = load_run_trace(url, args.run_id, include_io=args.show_io)
    except RunNotFound as exc:
        print(f"agentyard: {exc}", file=sys.stderr)
        return EXIT_FAILED
    console_for().print(trace_tree(run, show_io=args.show_io))
    return 0


def _graph(args: argparse.Namespace) -> int:
    from orchestration.graph_formats import FORMATS
    from orchestration.run_graph import build_graph
    from orchestration.run_trace import load_run_trace
    from storage.errors import RunNotFound

    url, _ = _database_of(args.team)
    try:
        graph = build_graph(load_run_trace(url, args.run_id))
    except RunNotFound as exc:
        print(f"agentyard: {exc}", file=sys.stderr)
        return EXIT_FAILED
    text = FORMATS[args.format](graph)
    if args.output is None:
        sys.stdout.write(text)
        return 0
    try:
        with open(args.output, "w", encoding="utf-8") as handle:
            handle.write(text)
    except OSError as exc:
        print(
            f"agentyard: cannot write {args.output} ({exc.strerror}); name a file in a "
            "directory that exists and that you may write to",
            file=sys.stderr,
        )
        return EXIT_FAILED
    print(
        f"wrote the {args.format} graph of run {graph.run.id} ({len(graph.nodes)} node(s), "
        f"{len(graph.edges)} edge(s)) to {args.output}"
    )
    return 0


def _find(args: argparse.Namespace) -> int:
    from orchestration.trace_queries import RunQuery, find_runs
    from orchestration.trace_report import console_for, found_table, found_title

    url, team = _database_of(args.team)
    query = RunQuery(
        agent=args.agent,
        cost_over_usd=args.cost_over,
        slower_than_s=args.slower_than,
        team=team,
        workflow=args.workflow,
        since=args.since,
        limit=args.limit,
    )
    found = find_runs(url, query)
    if args.json:
        print(json.dumps([run.as_json() for run in found], indent=2))
        return 0
    console = console_for()
    console.print(found_title(query, found), markup=False)
    if found:
        console.print(found_table(query, found))
    return 0


def _costs(args: argparse.Namespace) -> int:
    from orchestration.costs import rebuild, report
    from orchestration.loader import load_orchestrator
    from orchestration.pricing import micro_to_usd

    words = list(args.words)
    action = words.pop(0) if words and words[0] in ("show", "rebuild") else "show"
    if len(words) != 1:
        print("usage: agentyard costs [show|rebuild] module:orchestrator", file=sys.stderr)
        return EXIT_USAGE
    orc = load_orchestrator(words[0])
    orc.ensure_ready()
    store = orc.budget_store()
    if action == "rebuild":
        if store is None:
            print("agentyard: spend caps live in Redis; set AGENTYARD_REDIS_URL", file=sys.stderr)
            return EXIT_USAGE
        raised = rebuild(orc.database_url, orc.team, store)
        print(f"raised {raised} spend counter(s) of team {orc.name!r} to what the ledger says")
        return 0
    costs = report(orc.database_url, orc.name, args.days, store)
    print(f"spend of team {orc.name!r}, last {args.days} day(s), from the cost ledger:")
    if not costs.spend:
        print("  nothing spent")
    for row in costs.spend:
        unknown = (
            f"  of which {row.unknown_calls} cut off by a dead worker: unknown, at most "
            f"${micro_to_usd(row.unknown_micro):.6f}"
            if row.unknown_calls
            else ""
        )
        print(
            f"  {row.day}  {row.kind:8} {row.name:30} {row.calls:>7} call(s)  "
            f"{'$' + format(micro_to_usd(row.cost_micro), '.6f'):>13}{unknown}"
        )
    held = sum(amount for _, amount in costs.held)
    print(f"reserved now: ${micro_to_usd(held):.6f} in {len(costs.held)} open hold(s)")
    return 0


def _breakers(args: argparse.Namespace) -> int:
    from orchestration.loader import load_orchestrator

    orc = load_orchestrator(args.team)
    store = orc.breaker_store()
    if store is None:
        print("agentyard: breakers live in Redis; set AGENTYARD_REDIS_URL", file=sys.stderr)
        return EXIT_USAGE
    print(f"circuit breakers of team {orc.name!r}:")
    for agent_id in sorted(orc.team.agents):
        state = store.state(agent_id)
        left = f", open for {state.open_for_s:.1f}s more" if state.state == "open" else ""
        print(
            f"  {agent_id:30} {state.state:10} {state.failures} recent failure(s), "
            f"opened {state.opened} time(s){left}"
        )
    return 0


def _migrate(_args: argparse.Namespace) -> int:
    from storage.db import migrate
    from storage.settings import Settings

    migrate(Settings().effective_database_url)
    print("schema is current")
    return 0


def _stub(args: argparse.Namespace) -> int:
    from workers.stub_anthropic import serve

    serve(args.host, args.port, latency_s=args.latency)
    return 0


def _demo(args: argparse.Namespace) -> int:
    from orchestration.demo import run_demo

    return run_demo(team=args.team, workflow=args.workflow, topic=args.topic)


def _priority(text: str) -> int:
    try:
        return priorities.check(int(text))
    except (ValueError, AgentyardError) as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _bounded(
    convert: Callable[[str], float], low: float, high: float, what: str
) -> Callable[[str], Any]:
    """An argparse type: ``text`` as ``convert`` reads it, from ``low`` to ``high``; anything
    else is refused saying ``what`` is wanted."""

    def parse(text: str) -> Any:
        try:
            value = convert(text)
        except ValueError:
            value = math.nan
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{what}, not {text!r}")
        return value

    return parse


_port = _bounded(int, 0, 65535, "a port number 0..65535 (0: any free port)")
_positive = _bounded(int, 1, math.inf, "a whole number of at least 1")
_usd_amount = _bounded(float, 0, math.inf, "an amount in USD, 0 or more (e.g. 0.05)")
_seconds = _bounded(float, 0, math.inf, "a number of seconds, 0 or more")


def _since(text: str) -> timedelta | datetime:
    """``7d``, ``12h``, ``30m``, ``90s``, or an ISO date or time (UTC unless it says)."""
    units = {"d": "days", "h": "hours", "m": "minutes", "s": "seconds"}
    amount, unit = text[:-1], text[-1:]
    if unit in units and amount.replace(".", "", 1).isdigit() and float(amount) > 0:
        return timedelta(**{units[unit]: float(amount)})
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"a time window like 7d, 12h or 30m, or a date like 2025-01-31, not {text!r}"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="agentyard", description=__doc__)
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
        type=_port,
        help="serve Prometheus /metrics on this port (0: any free port, logged); "
        "default AGENTYARD_METRICS_PORT, unset: none",
    )
    worker.set_defaults(func=_worker)

    beat = commands.add_parser(
        "beat",
        help="run Celery beat, sending the sweeps as periodic tasks (optional: every coordinator "
        "sweeps on its own)",
    )
    beat.add_argument("team")
    beat.add_argument("--loglevel", default="INFO")
    beat.set_defaults(func=_beat)

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
    flower.set_defaults(func=_flower)

    run = commands.add_parser("run", help="enqueue one workflow and follow it")
    run.add_argument("team")
    run.add_argument("workflow")
    run.add_argument("input")
    run.add_argument(
        "--priority", type=_priority, default=priorities.DEFAULT, help="0..9, 9 most urgent"
    )
    run.add_argument("--timeout", type=float, default=600.0, help="seconds to follow it")
    run.add_argument("--no-wait", action="store_true", help="print the run id and return")
    run.set_defaults(func=_run)

    status = commands.add_parser("status", help="show one run")
    status.add_argument("run_id")
    status.add_argument("--brief", action="store_true", help="leave out the output")
    status.set_defaults(func=_status)

    messages = commands.add_parser(
        "messages", help="a run's messages in order, who acknowledged them, delivered or not"
    )
    messages.add_argument("run_id")
    messages.set_defaults(func=_messages)

    deadletters = commands.add_parser(
        "deadletters",
        help="the latest dead letters; `deadletters TEAM --republish ID` publishes one again",
    )
    deadletters.add_argument(
        "team", nargs="?", help="the orchestrator, as module:attribute (needed by --republish)"
    )
    deadletters.add_argument(
        "--limit", type=_positive, default=50, help="how many to list (default 50)"
    )
    deadletters.add_argument(
        "--republish",
        metavar="ID",
        help="publish the message of dead letter ID again to its recipient, as the next attempt",
    )
    deadletters.set_defaults(func=_deadletters)

    costs = commands.add_parser(
        "costs",
        help="spend per agent, workflow type and day, and what is reserved now; "
        "`costs rebuild TEAM` restores the Redis spend counters from the ledger",
    )
    costs.add_argument("words", nargs="+", metavar="[show|rebuild] TEAM")
    costs.add_argument("--days", type=int, default=7, help="how many days back (show)")
    costs.set_defaults(func=_costs)

    breakers = commands.add_parser("breakers", help="each agent's circuit breaker, as it is now")
    breakers.add_argument("team")
    breakers.set_defaults(func=_breakers)

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
    trace.set_defaults(func=_trace)

    graph = commands.add_parser(
        "graph", help="one run's dependency graph from its trace records: mermaid, dot or JSON"
    )
    graph.add_argument(
        "team", nargs="?", help="the orchestrator, as module:attribute (its settings are used)"
    )
    graph.add_argument("run_id")
    graph.add_argument("--format", choices=["mermaid", "dot", "json"], default="mermaid")
    graph.add_argument("--output", metavar="FILE", help="write it to FILE instead of stdout")
    graph.set_defaults(func=_graph)

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
        type=_usd_amount,
        metavar="USD",
        help="the agent's calls in the run (or, without --agent, the whole run) cost more",
    )
    find.add_argument(
        "--slower-than",
        type=_seconds,
        metavar="SECONDS",
        help="finished: took longer; still under way: has run longer so far",
    )
    find.add_argument("--workflow", help="runs of this workflow type only")
    find.add_argument(
        "--since",
        type=_since,
        default=timedelta(days=7),
        help="runs created in this window: 7d (default), 12h, 30m, or since a date (UTC)",
    )
    find.add_argument("--limit", type=_positive, default=50, help="at most this many (50)")
    find.add_argument("--json", action="store_true", help="a JSON list instead of a table")
    find.set_defaults(func=_find)

    migrate = commands.add_parser("migrate", help="create or upgrade the database schema")
    migrate.set_defaults(func=_migrate)

    stub = commands.add_parser("stub-anthropic", help="a local server speaking the Messages API")
    stub.add_argument("--host", default="127.0.0.1")
    stub.add_argument("--port", type=int, default=8765)
    stub.add_argument("--latency", type=float, default=0.0, help="seconds per response")
    stub.set_defaults(func=_stub)

    demo = commands.add_parser("demo", help="run the example team end to end, no servers needed")
    demo.add_argument("--team", default="examples.team:orc")
    demo.add_argument("--workflow", default="research")
    demo.add_argument("--topic", default="the history of the electric telegraph")
    demo.set_defaults(func=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except WaitTimeout as exc:
        print(f"agentyard: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except AgentyardError as exc:
        print(f"agentyard: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
