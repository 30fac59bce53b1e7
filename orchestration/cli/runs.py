"""Running and reading runs: ``run``, ``status``, ``messages``, ``trace``, ``graph``, ``find``."""

from __future__ import annotations

import argparse
import json
import sys

from orchestration.cli.exit_codes import ExitCode
from storage.errors import InvalidRequest, WaitTimeout

STDIN = "-"
"""The input argument that means: read the input from standard input."""


def run(args: argparse.Namespace) -> ExitCode:
    from orchestration.loader import load_orchestrator
    from orchestration.report import ProgressPrinter, format_result
    from storage.models import WorkflowStatus

    text = read_input(args.input)
    orc = load_orchestrator(args.team)
    submitted = orc.submit(args.workflow, text, priority=args.priority)
    print(f"submitted run {submitted.id}")
    if args.no_wait:
        return ExitCode.OK
    try:
        result = submitted.wait(timeout=args.timeout, on_progress=ProgressPrinter())
    except WaitTimeout:
        raise WaitTimeout(
            f"run {submitted.id} has not finished after {args.timeout:g}s (--timeout); it goes "
            f"on: `agentyard status {args.team} {submitted.id}` shows where it is"
        ) from None
    print(format_result(result))
    if result.status is WorkflowStatus.SUCCEEDED:
        return ExitCode.OK
    return ExitCode.RUN_DID_NOT_SUCCEED


def read_input(given: str) -> str:
    """A run's input: ``given`` itself, or with ``-`` all of standard input, read as bytes and
    decoded as UTF-8 (strictly: a document is not guessed at)."""
    if given != STDIN:
        return given
    if sys.stdin is None:
        raise InvalidRequest("the input is '-' but this process has no standard input to read")
    if sys.stdin.isatty():
        print("reading the input from standard input; end it with Ctrl-D", file=sys.stderr)
    data = sys.stdin.buffer.read()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidRequest(
            f"standard input is not UTF-8: byte {exc.start} (0x{data[exc.start]:02x}) "
            f"cannot be decoded ({exc.reason}); convert it first, e.g. with "
            "iconv -f latin1 -t utf-8"
        ) from None


def status(args: argparse.Namespace) -> ExitCode:
    from orchestration.report import format_result
    from orchestration.results import load_result

    url, _ = database_of(args.team)
    print(format_result(load_result(url, args.run_id), show_output=not args.brief))
    return ExitCode.OK


def messages(args: argparse.Namespace) -> ExitCode:
    from bus.message_log import messages_of
    from orchestration.report import format_messages

    url, _ = database_of(args.team)
    print(format_messages(args.run_id, messages_of(url, args.run_id)))
    return ExitCode.OK


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


def trace(args: argparse.Namespace) -> ExitCode:
    from orchestration.run_trace import load_run_trace
    from orchestration.trace_report import console_for, trace_tree

    url, _ = database_of(args.team)
    loaded = load_run_trace(url, args.run_id, include_io=args.show_io)
    console_for().print(trace_tree(loaded, show_io=args.show_io))
    return ExitCode.OK


def graph(args: argparse.Namespace) -> ExitCode:
    from orchestration.graph_formats import FORMATS
    from orchestration.run_graph import build_graph
    from orchestration.run_trace import load_run_trace

    url, _ = database_of(args.team)
    built = build_graph(load_run_trace(url, args.run_id))
    text = FORMATS[args.format](built)
    if args.output is None:
        sys.stdout.write(text)
        return ExitCode.OK
    try:
        with open(args.output, "w", encoding="utf-8") as handle:
            handle.write(text)
    except OSError as exc:
        raise InvalidRequest(
            f"cannot write {args.output} ({exc.strerror}); name a file in a directory that "
            "exists and that you may write to"
        ) from None
    print(
        f"wrote the {args.format} graph of run {built.run.id} ({len(built.nodes)} node(s), "
        f"{len(built.edges)} edge(s)) to {args.output}"
    )
    return ExitCode.OK


def find(args: argparse.Namespace) -> ExitCode:
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
        return ExitCode.OK
    console = console_for()
    console.print(found_title(query, found), markup=False)
    if found:
        console.print(found_table(query, found))
    return ExitCode.OK
