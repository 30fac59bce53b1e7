"""A person's decisions on the shell: ``approvals`` (what waits), ``approve`` and ``reject``.

Each reads the database of the team named, or, with none, of the ``AGENTYARD_*`` settings (as
``status`` does). A decision with no team named is carried on by the coordinators: it asks them
with an advance on the settings' broker (or, with none, leaves it to their sweep).
"""

from __future__ import annotations

import argparse
import json
import textwrap
from collections.abc import Callable, Sequence

from bus.envelope import AgentMessage
from orchestration.cli.exit_codes import ExitCode

SUBJECT_CHARS = 500  # of what is to be approved, on one line, unless --full


def approvals(args: argparse.Namespace) -> ExitCode:
    from orchestration.approvals import Approvals
    from orchestration.cli.runs import database_of
    from orchestration.report import approve_command
    from orchestration.trace_report import shorten
    from orchestration.workflow.gates import described, short

    url, team = database_of(args.team)
    waiting = Approvals(url, team).pending()
    if args.json:
        print(json.dumps([approval.as_json() for approval in waiting], indent=2))
        return ExitCode.OK
    of = f" of team {team!r}" if team is not None else ""
    print(f"{len(waiting)} approval(s) waiting{of}, oldest first")
    for approval in waiting:
        due = (
            "no due time"
            if approval.due_at is None
            else f"due {approval.due_at:%Y-%m-%d %H:%M:%S} UTC (then {approval.on_timeout})"
        )
        where = f"  scope {approval.scope}" if approval.scope else ""
        again = f"  asked {approval.requests} times" if approval.requests > 1 else ""
        print(
            f"run {approval.run_id}  team {approval.team}  workflow {approval.workflow}  "
            f"{described(approval.kind, approval.gate)}{where}  requested "
            f"{approval.requested_at:%Y-%m-%d %H:%M:%S} UTC  {due}{again}"
        )
        print(f"  hash {short(approval.subject_hash)}")
        if args.full:
            print("  to approve:")
            print(textwrap.indent(approval.subject, "    "))
        else:
            print(f"  to approve: {shorten(approval.subject, SUBJECT_CHARS)}")
        command = approve_command(
            approval.run_id, approval.gate, approval.subject_hash, approval.scope
        )
        print(f"  {command}")
    return ExitCode.OK


def approve(args: argparse.Namespace) -> ExitCode:
    return _decide(args, approved=True)


def reject(args: argparse.Namespace) -> ExitCode:
    return _decide(args, approved=False)


def _decide(args: argparse.Namespace, approved: bool) -> ExitCode:
    from orchestration.approvals import Approvals
    from orchestration.workflow.gates import GATE, described, short

    deciding: Approvals
    if args.team is not None:  # its coordinator carries the decision out at once
        from orchestration.loader import load_orchestrator

        orc = load_orchestrator(args.team)
        orc.ensure_ready()
        deciding = orc.approvals
    else:
        from orchestration.cli.runs import database_of

        url, _ = database_of(None)
        deciding = Approvals(url, None, route=_route())
    decide = deciding.approve if approved else deciding.reject
    decided = decide(
        args.run_id, args.gate, by=args.by, note=args.note, subject_hash=args.hash, scope=args.scope
    )
    where = f" (scope {decided.scope})" if decided.scope else ""
    if approved:
        follows = "the run goes on" if decided.kind == GATE else "the call runs"
    else:
        follows = (
            "the run ends rejected"
            if decided.kind == GATE
            else "it does not run, and the model is told so"
        )
    by_whom = "" if decided.applied else "; a coordinator carries it out"
    print(
        f"{decided.status} {described(decided.kind, decided.gate)}{where} of run "
        f"{decided.run_id} as {decided.by} "
        f"(hash {short(decided.subject_hash)}): {follows}{by_whom}"
    )
    return ExitCode.OK


def _route() -> Callable[[Sequence[AgentMessage]], object] | None:
    """Send messages on the broker of the environment's settings (None: none is configured,
    and the coordinators' sweep finds the decision)."""
    from bus.publisher import Bus
    from storage.settings import Settings
    from workers.celery_app import make_celery

    settings = Settings()
    if not settings.effective_broker_url:
        return None
    return Bus(make_celery("agentyard", settings), settings.effective_database_url).route
