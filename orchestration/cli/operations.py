"""What an operator watches and mends: ``deadletters``, ``costs`` and ``breakers``."""

from __future__ import annotations

import argparse

from orchestration.cli.exit_codes import ExitCode
from storage.errors import ConfigurationError, InvalidRequest


def deadletters(args: argparse.Namespace) -> ExitCode:
    from bus.dead_letters import DeadLetters, republish
    from orchestration.loader import load_orchestrator
    from orchestration.report import format_dead_letters
    from storage.db import migrate
    from storage.settings import Settings

    if args.republish is not None and args.team is None:
        raise InvalidRequest(
            "publishing again needs the team, whose bus sends the message: "
            f"agentyard deadletters TEAM --republish {args.republish}"
        )
    orc = load_orchestrator(args.team) if args.team else None
    if orc is not None:
        orc.ensure_ready()
        url = orc.database_url
    else:
        url = Settings().effective_database_url
        migrate(url)
    if orc is None or args.republish is None:
        print(format_dead_letters(DeadLetters(url).latest(args.limit), args.limit))
        return ExitCode.OK
    done = republish(orc.bus, url, args.republish)
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
    return ExitCode.OK


def costs(args: argparse.Namespace) -> ExitCode:
    from orchestration.costs import rebuild, report
    from orchestration.loader import load_orchestrator
    from orchestration.pricing import micro_to_usd

    if args.team in ("show", "rebuild"):  # argparse takes a lone action for the team
        raise InvalidRequest(f"costs {args.team} needs the team: agentyard costs {args.team} TEAM")
    orc = load_orchestrator(args.team)
    orc.ensure_ready()
    store = orc.budget_store()
    if args.action == "rebuild":
        if store is None:
            raise ConfigurationError(
                "spend counters live in Redis, and this team has none: set AGENTYARD_REDIS_URL"
            )
        raised = rebuild(orc.database_url, orc.team, store)
        print(f"raised {raised} spend counter(s) of team {orc.name!r} to what the ledger says")
        return ExitCode.OK
    spent = report(orc.database_url, orc.name, args.days, store)
    print(f"spend of team {orc.name!r}, last {args.days} day(s), from the cost ledger:")
    if not spent.spend:
        print("  nothing spent")
    for row in spent.spend:
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
    held = sum(amount for _, amount in spent.held)
    print(f"reserved now: ${micro_to_usd(held):.6f} in {len(spent.held)} open hold(s)")
    return ExitCode.OK


def breakers(args: argparse.Namespace) -> ExitCode:
    from orchestration.loader import load_orchestrator

    orc = load_orchestrator(args.team)
    store = orc.breaker_store()
    if store is None:
        raise ConfigurationError(
            "circuit breakers live in Redis, and this team has none: set AGENTYARD_REDIS_URL"
        )
    print(f"circuit breakers of team {orc.name!r}:")
    for agent_id in sorted(orc.team.agents):
        state = store.state(agent_id)
        left = f", open for {state.open_for_s:.1f}s more" if state.state == "open" else ""
        print(
            f"  {agent_id:30} {state.state:10} {state.failures} recent failure(s), "
            f"opened {state.opened} time(s){left}"
        )
    return ExitCode.OK
