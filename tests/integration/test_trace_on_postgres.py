"""A run's trace, its graph and the queries over runs, on a real PostgreSQL: the same answers as
on SQLite, durations in PostgreSQL's own arithmetic, and SQL that the indexes can serve."""

from __future__ import annotations

import uuid
from datetime import timedelta

import fakeredis
import pytest
from sqlalchemy import text
from sqlalchemy.dialects import postgresql

from orchestration import Orchestrator, Settings, WorkflowStatus
from orchestration.run_graph import build_graph, graph_dict
from orchestration.trace_queries import RunQuery, find_runs, find_statement
from storage.db import engine_for, session_scope
from storage.models import utcnow
from tests.support import InlineBus
from tests.trace_support import record_run, run_to_the_end, trace_team_members

pytestmark = pytest.mark.integration


@pytest.fixture
def orc(server_settings: Settings) -> Orchestrator:
    """A team of its own name (the database is shared by the session's tests), its messages
    delivered in-process."""
    bus = InlineBus(server_settings.effective_database_url)
    orc = Orchestrator(
        f"trace-{uuid.uuid4().hex[:8]}", server_settings, bus=bus, redis=fakeredis.FakeRedis()
    )
    agents, workflows = trace_team_members()
    for agent in agents:
        orc.register_agent(agent)
    for workflow in workflows:
        orc.register_workflow(workflow)
    orc.ensure_ready()
    return orc


def _run(orc: Orchestrator, workflow: str, topic: str) -> str:
    bus = orc.bus
    assert isinstance(bus, InlineBus)
    return run_to_the_end(orc, bus, workflow, topic).id


def test_a_runs_trace_and_graph_on_postgresql_show_the_retries_and_the_fallback(
    orc: Orchestrator,
) -> None:
    run_id = _run(orc, "research", "the telegraph")

    trace = orc.runs.trace(run_id)

    assert trace.status == WorkflowStatus.SUCCEEDED.value and trace.team == orc.name
    assert [(c.agent, c.outcome) for c in trace.steps[1].calls] == [
        ("writer", "rate_limited"),
        ("writer", "rate_limited"),
        ("editor", "succeeded"),
    ]
    assert trace.cost_micro == round(orc.run(run_id).result().cost_usd * 1e6) > 0
    graph = graph_dict(build_graph(trace))
    assert [(e["source"], e["target"], e["kind"]) for e in graph["edges"]] == [
        ("s1a1", "s2a1", "input"),
        ("s2a1", "s2a2", "retry"),
        ("s2a2", "s2a3", "fallback"),
        ("s2a3", "s3a1", "input"),
    ]


def test_runs_are_found_by_an_agents_cost_and_by_duration_on_postgresql(
    orc: Orchestrator,
) -> None:
    now = utcnow()
    with session_scope(orc.database_url) as session:

        def run(ago_s: float, took_s: float | None, *calls: tuple[str, int, str]) -> str:
            created = now - timedelta(seconds=ago_s)
            finished = None if took_s is None else created + timedelta(seconds=took_s)
            return record_run(
                session, team=orc.name, created_at=created, finished_at=finished, calls=calls
            )

        dear = run(100, 40, ("writer", 30_000, "timeout"), ("writer", 30_000, "succeeded"))
        run(100, 10, ("writer", 40_000, "succeeded"))
        stuck = run(45, None, ("editor", 5_000, "succeeded"))
        run(5, None)

    by_cost = orc.runs.where_agent_cost_over("writer", 0.05)
    slow = find_runs(orc.database_url, RunQuery(slower_than_s=30, team=orc.name), now=now)

    assert [(r.id, r.agent_cost_micro, r.agent_calls) for r in by_cost] == [(dear, 60_000, 2)]
    assert [(r.id, r.finished) for r in slow] == [(stuck, False), (dear, True)]
    assert [r.duration_s for r in slow] == pytest.approx([45.0, 40.0], abs=1e-3)


@pytest.mark.parametrize(
    "query",
    [
        RunQuery(agent="writer", cost_over_usd=0.05),
        RunQuery(agent="writer", cost_over_usd=0.05, team="sample", workflow="research"),
        RunQuery(slower_than_s=30),
        RunQuery(cost_over_usd=1.0, since=timedelta(days=1)),
    ],
    ids=["agent-cost", "agent-cost-of-a-team", "slower-than", "run-cost"],
)
def test_the_queries_reach_every_table_through_an_index_on_postgresql(
    orc: Orchestrator, query: RunQuery
) -> None:
    compiled = find_statement(query, utcnow()).compile(dialect=postgresql.psycopg.dialect())
    with engine_for(orc.database_url).connect() as connection:
        # With sequential scans priced out, PostgreSQL still uses one where no index can serve
        # a table: a plan without one shows that every table can be reached by an index.
        connection.execute(text("SET enable_seqscan = off"))
        plan = "\n".join(
            row[0] for row in connection.exec_driver_sql(f"EXPLAIN {compiled}", compiled.params)
        )
        connection.rollback()

    assert "Seq Scan" not in plan, plan
    assert "ix_workflows_created_at" in plan or "ix_traces_" in plan, plan
