"""Running and reading runs: ``run``, ``status``, ``messages``, ``trace``, ``graph``, ``find``."""

from __future__ import annotations

import argparse
import json
import sys

from orchestration.cli.exit_codes import EXIT_FAILED


def run(args: argparse.Namespace) -> int:
    from orchestration.loader import load_orchestrator
    from orchestration.report import ProgressPrinter, format_result

    orc = load_orchestrator(args.team)
    submitted = orc.submit(args.workflow, args.input, priority=args.priority)
    print(f"submitted run {submitted.id}")
    if args.no_wait:
        return 0
    result = submitted.wait(timeout=args.timeout, on_progress=ProgressPrinter())
    print(format_result(result))
    return 0 if result.status.value == "succeeded" else EXIT_FAILED


def status(args: argparse.Namespace) -> int:
    from orchestration.report import format_result
    from orchestration.results import load_result
    from storage.db import migrate
    from storage.settings import Settings

    url = Settings().effective_database_url
    migrate(url)
    print(format_result(load_result(url, args.run_id), show_output=not args.brief))
    return 0


def messages(args: argparse.Namespace) -> int:
    from bus.message_log import messages_of
    from orchestration.report import format_messages
    from storage.db import migrate
    from storage.errors import RunNotFound
    from storage.settings import Settings

    url = Settings().effective_database_url
    migrate(url)
    try:
        found = messages_of(url, args.run_id)
    except RunNotFound as exc:
        print(f"agentyard: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(format_messages(args.run_id, found))
    return 0


def database_of(team: str | None) -> tuple[str, str | None]:
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


def trace(args: argparse.Namespace) -> int:
    from orchestration.run_trace import load_run_trace
    from orchestration.trace_report import console_for, trace_tree
    from storage.errors import RunNotFound

    url, _ = database_of(args.team)
    try:
        loaded = load_run_trace(url, args.run_id, include_io=args.show_io)
    except RunNotFound as exc:
        print(f"agentyard: {exc}", file=sys.stderr)
        return EXIT_FAILED
    console_for().print(trace_tree(loaded, show_io=args.show_io))
    return 0


def graph(args: argparse.Namespace) -> int:
    from orchestration.graph_formats import FORMATS
    from orchestration.run_graph import build_graph
    from orchestration.run_trace import load_run_trace
    from storage.errors import RunNotFound

    url, _ = database_of(args.team)
    try:
        built = build_graph(load_run_trace(url, args.run_id))
    except RunNotFound as exc:
        print(f"agentyard: {exc}", file=sys.stderr)
        return EXIT_FAILED
    text = FORMATS[args.format](built)
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
        f"wrote the {args.format} graph of run {built.run.id} ({len(built.nodes)} node(s), "
        f"{len(built.edges)} edge(s)) to {args.output}"
    )
    return 0


def find(args: argparse.Namespace) -> int:
    from orchestration.trace_queries import RunQuery, find_runs
    from orchestration.trace_report import console_for, found_table, found_title

    url, team = database_of(args.team)
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
        print(json.dumps([row.as_json() for row in found], indent=2))
        return 0
    console = console_for()
    console.print(found_title(query, found), markup=False)
    if found:
        console.print(found_table(query, found))
    return 0
