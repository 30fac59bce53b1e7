"""What an operator watches and mends: ``deadletters``, ``costs`` and ``breakers``."""

from __future__ import annotations

import argparse
import sys

from orchestration.cli.exit_codes import EXIT_FAILED, EXIT_USAGE


def deadletters(args: argparse.Namespace) -> int:
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


def costs(args: argparse.Namespace) -> int:
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
    return 0


def breakers(args: argparse.Namespace) -> int:
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
