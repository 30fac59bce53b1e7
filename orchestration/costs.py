"""What the cost ledger says: spend by agent, workflow type and day; and the Redis spend counters
rebuilt from it (``agentyard costs`` and ``agentyard costs rebuild``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

from sqlalchemy import case, func, select
from sqlmodel import Session

from orchestration.team import Team
from storage import statements
from storage.budget_store import BudgetStore
from storage.db import session_scope
from storage.models import WorkflowStatus, day_of, utcnow

# Daily counters live three days in Redis; these are the days a rebuild restores.
DAYS_KEPT = 3


@dataclass(frozen=True, slots=True)
class Spend:
    day: date
    kind: str  # "agent" or "workflow"
    name: str
    calls: int
    cost_micro: int  # known costs and, for calls cut off by a dead worker, their worst case
    unknown_calls: int = 0  # calls cut off by a dead worker: what they cost is unknown...
    unknown_micro: int = 0  # ...but at most this much in all (part of cost_micro)


@dataclass(frozen=True, slots=True)
class CostReport:
    spend: list[Spend]  # newest day first
    held: list[tuple[str, int]]  # reservations open now: hold id, micro-dollars


@dataclass(frozen=True, slots=True)
class _DaySpend:
    kind: str
    day: int
    name: str
    calls: int
    cost_micro: int
    unknown_calls: int
    unknown_micro: int


def _daily_spend(session: Session, team: str, since: int) -> list[_DaySpend]:
    """What was spent per day, per agent and per workflow type, from day ``since`` on."""
    ledger = statements.ledger
    unknown = ledger.c.unknown.is_(True)
    out: list[_DaySpend] = []
    for kind, column in (("agent", ledger.c.agent_id), ("workflow", ledger.c.workflow)):
        query = (
            select(
                ledger.c.day,
                column,
                func.count(),
                func.sum(ledger.c.cost_micro),
                func.sum(case((unknown, 1), else_=0)),
                func.sum(case((unknown, ledger.c.cost_micro), else_=0)),
            )
            .where(ledger.c.team == team, ledger.c.day >= since)
            .group_by(ledger.c.day, column)
        )
        for day, name, calls, cost, unknown_calls, unknown_micro in session.execute(query):
            out.append(
                _DaySpend(
                    kind,
                    int(day),
                    str(name),
                    int(calls),
                    int(cost or 0),
                    int(unknown_calls or 0),
                    int(unknown_micro or 0),
                )
            )
    return out


def report(url: str, team: str, days: int, store: BudgetStore | None) -> CostReport:
    with session_scope(url) as session:
        rows = [
            Spend(
                _date(row.day),
                row.kind,
                row.name,
                row.calls,
                row.cost_micro,
                row.unknown_calls,
                row.unknown_micro,
            )
            for row in _daily_spend(session, team, day_of(utcnow()) - days + 1)
        ]
    rows.sort(key=lambda s: (-s.day.toordinal(), s.kind, -s.cost_micro))
    return CostReport(rows, store.holds() if store is not None else [])


def rebuild(url: str, team: Team, store: BudgetStore) -> int:
    """Raise the Redis spend counters of every cap to what the ledger says: the daily counters of
    capped agents and workflow types over the last days, and the totals of the runs with a
    budget still under way. Safe while workers run (a counter already higher is left alone).
    Returns how many counters were raised."""
    ledger, workflows = statements.ledger, statements.workflows
    since = day_of(utcnow()) - DAYS_KEPT + 1
    capped = {
        "agent": {a.id for a in team.agents.values() if a.cost_limit_usd is not None},
        "workflow": {w.name for w in team.workflows.values() if w.daily_budget_usd is not None},
    }
    spent: dict[tuple[str, str], int] = {}
    with session_scope(url) as session:
        for row in _daily_spend(session, team.name, since):
            if row.name in capped[row.kind]:
                spent[(f"{row.kind}:{row.name}", f"d{row.day}")] = row.cost_micro
        running = (
            select(ledger.c.workflow_id, func.sum(ledger.c.cost_micro))
            .join(workflows, workflows.c.id == ledger.c.workflow_id)
            .where(
                ledger.c.team == team.name,
                workflows.c.budget_micro.is_not(None),
                workflows.c.status.in_(WorkflowStatus.unfinished()),
            )
            .group_by(ledger.c.workflow_id)
        )
        for run_id, cost in session.execute(running):
            spent[(f"run:{run_id}", "total")] = int(cost or 0)
    return store.restore(spent)


def _date(day: int) -> date:
    return datetime.fromtimestamp(day * 86400, UTC).date()
