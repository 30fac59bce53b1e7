"""The commands that need no team: ``migrate``, ``stub-anthropic`` and ``demo``."""

from __future__ import annotations

import argparse


def migrate(_args: argparse.Namespace) -> int:
    from storage.db import migrate
    from storage.settings import Settings

    migrate(Settings().effective_database_url)
    print("schema is current")
    return 0


def stub_anthropic(args: argparse.Namespace) -> int:
    from workers.stub_anthropic import serve

    serve(args.host, args.port, latency_s=args.latency)
    return 0


def demo(args: argparse.Namespace) -> int:
    from orchestration.demo import run_demo

    return run_demo(team=args.team, workflow=args.workflow, topic=args.topic)
