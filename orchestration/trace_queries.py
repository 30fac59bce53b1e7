"""Questions operators ask about many runs, answered from the trace records
(``agentyard find`` and ``orc.runs``):

- which runs did an agent cost more than $X in (its calls in the run summed, failed attempts
  included);
- which runs were slower than Y seconds: a finished run by ``finished_at - created_at``, one
  still under way by ``now - created_at`` (``FoundRun.finished`` says which);

each among the runs created in a time window (the last 7 days unless told), optionally of one
team and one workflow type, at most ``limit`` of them. Conditions given together must all hold.

The SQL is written for the indexes: the window bounds ``workflows.created_at`` (indexed), an
agent's calls are found through ``traces.workflow_id`` and ``traces.agent_id`` (both indexed),
and "slower than Y" also bounds ``created_at`` from above (a run slower than Y was created
more than Y ago). Durations are computed in the database (``EXTRACT(EPOCH ...)`` on PostgreSQL,
``julianday`` on SQLite), so the limit applies after the condition.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import DateTime, Float, Select, bindparam, func, literal, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from orchestration.pricing import micro_to_usd, usd_to_micro
from orchestration.run_trace import RunTrace, load_run_trace
from storage import statements
from storage.db import session_scope
from storage.errors import InvalidRequest
from storage.models import as_utc, utcnow

DEFAULT_WINDOW = timedelta(days=7)
DEFAULT_LIMIT = 50


@dataclass(frozen=True, slots=True)
class RunQuery:
    """What to look for, among which runs. ``agent`` alone finds the runs it made calls in;
    with ``cost_over_usd`` the runs where its calls cost more than that. ``cost_over_usd``
    without an agent compares the run's whole cost."""

    agent: str | None = None
    cost_over_usd: float | None = None
    slower_than_s: float | None = None
    team: str | None = None
    workflow: str | None = None
    since: datetime | timedelta = DEFAULT_WINDOW  # a moment, or how far back from now
    limit: int = DEFAULT_LIMIT

    def __post_init__(self) -> None:
        if self.cost_over_usd is not None and not self.cost_over_usd >= 0:
            raise InvalidRequest(f"a cost threshold is USD, 0 or more, not {self.cost_over_usd}")
        if self.slower_than_s is not None and not self.slower_than_s >= 0:
            raise InvalidRequest(f"a duration is seconds, 0 or more, not {self.slower_than_s}")
        if self.limit < 1:
            raise InvalidRequest(f"limit must be at least 1, not {self.limit}")
        if isinstance(self.since, timedelta) and self.since <= timedelta(0):
            raise InvalidRequest(
                f"the time window must reach back a positive time, not {self.since}; "
                "for example timedelta(days=7)"
            )

    def start(self, now: datetime) -> datetime:
        """The earliest creation time of the runs looked at."""
        return now - self.since if isinstance(self.since, timedelta) else as_utc(self.since)

    def describe(self) -> str:
        """The query in words, e.g. "of team 'sample' where agent 'writer' cost more than
        $0.050000, created in the last 7 days"."""
        among = " ".join(
            part
            for part in (
                f"of team {self.team!r}" if self.team else "of every team",
                f"and workflow {self.workflow!r}" if self.workflow else "",
            )
            if part
        )
        conditions = []
        if self.agent is not None:
            spent = f"{self.cost_over_usd:.6f}" if self.cost_over_usd is not None else None
            conditions.append(
                f"where agent {self.agent!r} cost more than ${spent}"
                if spent is not None
                else f"where agent {self.agent!r} made calls"
            )
        elif self.cost_over_usd is not None:
            conditions.append(f"that cost more than ${self.cost_over_usd:.6f}")
        if self.slower_than_s is not None:
            conditions.append(f"that took longer than {self.slower_than_s:g}s")
        window = (
            f"created in the last {_span(self.since)}"
            if isinstance(self.since, timedelta)
            else f"created since {as_utc(self.since):%Y-%m-%d %H:%M:%S} UTC"
        )
        return ", ".join([" ".join([among, " and ".join(conditions)]).strip(), window])


@dataclass(frozen=True, slots=True)
class FoundRun:
    """A run a query found. ``duration_s`` is ``finished_at - created_at`` for a finished run,
    ``now - created_at`` (so far) for one under way. ``agent_*`` are set when the query named
    an agent: what its calls in this run cost, and how many there were."""

    id: str
    team: str
    workflow: str
    status: str
    created_at: datetime
    finished_at: datetime | None
    duration_s: float
    cost_micro: int
    agent: str | None = None
    agent_cost_micro: int | None = None
    agent_calls: int | None = None

    @property
    def finished(self) -> bool:
        return self.finished_at is not None

    @property
    def cost_usd(self) -> float:
        return micro_to_usd(self.cost_micro)

    @property
    def agent_cost_usd(self) -> float | None:
        return None if self.agent_cost_micro is None else micro_to_usd(self.agent_cost_micro)

    def as_json(self) -> dict[str, Any]:
        """The run as ``agentyard find --json`` prints it (times in ISO 8601, UTC; money in
        USD)."""
        return {
            "id": self.id,
            "team": self.team,
            "workflow": self.workflow,
            "status": self.status,
            "created_at": as_utc(self.created_at).isoformat(),
            "finished_at": None
            if self.finished_at is None
            else as_utc(self.finished_at).isoformat(),
            "finished": self.finished,
            "duration_s": round(self.duration_s, 3),
            "cost_usd": self.cost_usd,
            "agent": self.agent,
            "agent_cost_usd": self.agent_cost_usd,
            "agent_calls": self.agent_calls,
        }


class _SecondsBetween(FunctionElement[float]):
    """Seconds from the first timestamp to the second, in the database's own arithmetic."""

    type = Float()
    name = "seconds_between"
    inherit_cache = True


@compiles(_SecondsBetween)
def _seconds_sqlite(element: _SecondsBetween, compiler: SQLCompiler, **kw: Any) -> str:
    start, end = (compiler.process(clause, **kw) for clause in element.clauses)
    return f"((julianday({end}) - julianday({start})) * 86400.0)"


@compiles(_SecondsBetween, "postgresql")
def _seconds_postgresql(element: _SecondsBetween, compiler: SQLCompiler, **kw: Any) -> str:
    start, end = (compiler.process(clause, **kw) for clause in element.clauses)
    return f"EXTRACT(EPOCH FROM ({end}) - ({start}))"


def find_statement(query: RunQuery, now: datetime) -> Select[Any]:
    """The SELECT that answers ``query`` at ``now`` (one row per run)."""
    w, t = statements.workflows, statements.traces
    moment = literal(now, DateTime(timezone=True))
    duration = _SecondsBetween(w.c.created_at, func.coalesce(w.c.finished_at, moment))
    columns: list[Any] = [
        w.c.id,
        w.c.team,
        w.c.name,
        w.c.status,
        w.c.created_at,
        w.c.finished_at,
        w.c.cost_micro,
        duration.label("duration_s"),
    ]
    stmt = select(*columns).where(w.c.created_at >= bindparam("since", query.start(now)))
    if query.team is not None:
        stmt = stmt.where(w.c.team == query.team)
    if query.workflow is not None:
        stmt = stmt.where(w.c.name == query.workflow)
    if query.slower_than_s is not None:
        latest = now - timedelta(seconds=query.slower_than_s)
        stmt = stmt.where(
            w.c.created_at <= bindparam("created_by", latest),
            duration > literal(query.slower_than_s, Float()),
        )
    over = None if query.cost_over_usd is None else usd_to_micro(query.cost_over_usd)
    if query.agent is not None:
        spent = func.sum(t.c.cost_micro)
        stmt = (
            stmt.add_columns(spent.label("agent_cost"), func.count(t.c.id).label("agent_calls"))
            .join(t, (t.c.workflow_id == w.c.id) & (t.c.agent_id == query.agent))
            .group_by(*columns[:7])
        )
        if over is not None:
            stmt = stmt.having(spent > over)
        order = [spent.desc()] if over is not None else []
    else:
        if over is not None:
            stmt = stmt.where(w.c.cost_micro > over)
        order = [w.c.cost_micro.desc()] if over is not None else []
    if query.slower_than_s is not None and not order:
        order = [duration.desc()]
    return stmt.order_by(*order, w.c.created_at.desc(), w.c.id).limit(query.limit)


def find_runs(database_url: str, query: RunQuery, now: datetime | None = None) -> list[FoundRun]:
    """The runs that match ``query``: the costliest first when it names a cost, else the
    slowest first when it names a duration, else the newest first."""
    now = now or utcnow()
    with session_scope(database_url) as session:
        rows = session.execute(find_statement(query, now)).all()
    return [_found(row, query) for row in rows]


def _found(row: Any, query: RunQuery) -> FoundRun:
    named = query.agent is not None
    return FoundRun(
        id=row.id,
        team=row.team,
        workflow=row.name,
        status=row.status,
        created_at=as_utc(row.created_at),
        finished_at=as_utc(row.finished_at),
        duration_s=float(row.duration_s),
        cost_micro=int(row.cost_micro),
        agent=query.agent,
        agent_cost_micro=int(row.agent_cost or 0) if named else None,
        agent_calls=int(row.agent_calls) if named else None,
    )


def _span(window: timedelta) -> str:
    seconds = int(window.total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} seconds"


class RunQueries:
    """One team's runs, from Python: ``orc.runs``.

    ``orc.runs.trace(run_id)`` reads a run's trace; ``orc.runs.where_agent_cost_over("writer",
    0.05)`` and ``orc.runs.slower_than(30)`` look among this team's runs; ``orc.runs.find`` takes
    a whole ``RunQuery`` (``team=None`` looks at every team in the database)."""

    def __init__(self, database_url: str, team: str) -> None:
        self._url = database_url
        self._team = team

    def trace(self, run_id: str, *, include_io: bool = False) -> RunTrace:
        """The run, its steps and every call on record; ``RunNotFound`` if there is none."""
        return load_run_trace(self._url, run_id, include_io=include_io)

    def find(self, query: RunQuery, now: datetime | None = None) -> list[FoundRun]:
        return find_runs(self._url, query, now)

    def where_agent_cost_over(
        self,
        agent: str,
        usd: float,
        *,
        workflow: str | None = None,
        since: datetime | timedelta = DEFAULT_WINDOW,
        limit: int = DEFAULT_LIMIT,
    ) -> list[FoundRun]:
        """This team's runs where ``agent``'s calls cost more than ``usd`` in all (failed
        attempts included), costliest first."""
        query = RunQuery(
            agent=agent,
            cost_over_usd=usd,
            team=self._team,
            workflow=workflow,
            since=since,
            limit=limit,
        )
        return self.find(query)

    def slower_than(
        self,
        seconds: float,
        *,
        workflow: str | None = None,
        since: datetime | timedelta = DEFAULT_WINDOW,
        limit: int = DEFAULT_LIMIT,
    ) -> list[FoundRun]:
        """This team's runs that took more than ``seconds`` (or, still under way, have taken so
        far), slowest first."""
        query = RunQuery(
            slower_than_s=seconds, team=self._team, workflow=workflow, since=since, limit=limit
        )
        return self.find(query)
