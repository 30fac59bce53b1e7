"""The commands that need no team: ``migrate``, ``stub-anthropic`` and ``demo``."""

from __future__ import annotations

import argparse

from orchestration.cli.exit_codes import ExitCode


def migrate(_args: argparse.Namespace) -> ExitCode:
    from storage.db import migrate
    from storage.settings import Settings

    migrate(Settings().effective_database_url)
    print("schema is current")
    return ExitCode.OK


def stub_anthropic(args: argparse.Namespace) -> ExitCode:
    if args.asyncio:
        from workers import stub_anthropic_async as stub
    else:
        from workers import stub_anthropic as stub  # type: ignore[no-redef]

    stub.serve(args.host, args.port, latency_s=args.latency, min_cache_tokens=args.min_cache_tokens)
    return ExitCode.OK


def demo(args: argparse.Namespace) -> ExitCode:
    from orchestration.demo import run_demo

    succeeded = run_demo(team=args.team, workflow=args.workflow, topic=args.topic) == 0
    return ExitCode.OK if succeeded else ExitCode.RUN_DID_NOT_SUCCEED
