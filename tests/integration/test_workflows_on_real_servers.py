"""Workflows through a real Celery worker (in this process) on a real Redis and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from celery.contrib.testing.worker import start_worker
from sqlmodel import col, func, select

from orchestration import Agent, Orchestrator, Settings, Workflow, WorkflowStatus
from storage.db import session_scope
from storage.models import MessageRow, StepRow, TraceRow

pytestmark = pytest.mark.integration


@pytest.fixture
def orc(server_settings: Settings) -> Iterator[Orchestrator]:
    orc = Orchestrator("integration", server_settings)
    for agent_id in ("researcher", "writer", "reviewer"):
        orc.register_agent(
            Agent(id=agent_id, model="offline:echo", system_prompt=f"You are the {agent_id}.")
        )
    orc.register_workflow(Workflow.sequence("research", ["researcher", "writer", "reviewer"]))
    queues = ["coordinator", *(a.queue for a in orc.team.agents.values())]
    with start_worker(
        orc.celery,
        pool="threads",
        concurrency=4,
        perform_ping_check=False,
        queues=queues,
        shutdown_timeout=10,
    ):
        yield orc
    orc.close()


def test_a_workflow_runs_to_completion_through_a_real_worker(orc: Orchestrator) -> None:
    run = orc.submit("research", "history of the telegraph", priority=5)
    result = run.wait(timeout=60)

    assert result.status is WorkflowStatus.SUCCEEDED
    assert [s.status for s in result.steps] == ["succeeded"] * 3
    assert result.output and "history of the telegraph" in result.output
    assert result.cost_usd > 0


def test_many_workflows_in_parallel_all_finish_with_one_trace_per_step(orc: Orchestrator) -> None:
    runs = [orc.submit("research", f"topic {i}", priority=i % 10) for i in range(20)]
    results = [run.wait(timeout=120) for run in runs]

    assert all(r.status is WorkflowStatus.SUCCEEDED for r in results)
    with session_scope(orc.database_url) as session:
        ids = [r.id for r in results]
        traces = session.exec(
            select(func.count()).select_from(TraceRow).where(col(TraceRow.workflow_id).in_(ids))
        ).one()
        undelivered = session.exec(
            select(func.count())
            .select_from(MessageRow)
            .where(col(MessageRow.workflow_id).in_(ids), col(MessageRow.delivered_at).is_(None))
        ).one()
    assert traces == 60
    assert undelivered == 0


def test_the_run_is_on_record_in_postgres_with_its_messages_in_order(orc: Orchestrator) -> None:
    result = orc.submit("research", "the telegraph").wait(timeout=60)

    with session_scope(orc.database_url) as session:
        messages = session.exec(
            select(MessageRow)
            .where(MessageRow.workflow_id == result.id)
            .order_by(col(MessageRow.created_at))
        ).all()
        steps = session.exec(select(StepRow).where(StepRow.workflow_id == result.id)).all()
    assert [(m.type, m.sender, m.recipients[0]) for m in messages] == [
        ("request", "coordinator", "researcher"),
        ("response", "researcher", "coordinator"),
        ("request", "coordinator", "writer"),
        ("response", "writer", "coordinator"),
        ("request", "coordinator", "reviewer"),
        ("response", "reviewer", "coordinator"),
    ]
    assert all(m.delivered_at is not None for m in messages)
    assert all(s.lease_until is None for s in steps)


def test_broker_keys_live_under_the_configured_prefix(
    orc: Orchestrator, server_settings: Settings
) -> None:
    orc.submit("research", "the telegraph").wait(timeout=60)

    client = redis.Redis.from_url(server_settings.redis_url or "")
    assert list(client.scan_iter(match=f"{server_settings.redis_key_prefix}*"))
    assert not client.exists("agent.researcher")  # nothing leaked outside the prefix
    client.close()


def test_reattaching_from_another_orchestrator_object_sees_the_same_run(
    orc: Orchestrator, server_settings: Settings
) -> None:
    run = orc.submit("research", "the telegraph")
    other = Orchestrator("integration", server_settings)

    result = other.run(run.id).wait(timeout=60)

    assert result.id == run.id
    assert result.status is WorkflowStatus.SUCCEEDED


def test_runs_submitted_together_are_recorded_at_once_and_each_goes_through(
    orc: Orchestrator,
) -> None:
    topics = [f"topic {i}" for i in range(50)]

    runs = orc.submit_many("research", topics, priority=3)

    results = [run.wait(timeout=120) for run in runs]
    assert all(r.status is WorkflowStatus.SUCCEEDED for r in results)
    assert [r.id for r in results] == [run.id for run in runs]  # in the order of the inputs
    assert all(topic in (r.output or "") for topic, r in zip(topics, results, strict=True))
