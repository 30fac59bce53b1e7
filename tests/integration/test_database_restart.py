"""Every connection to PostgreSQL dropped mid-run, twice: the workers ride it out and every
workflow finishes, each result recorded once."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator

import pytest
from celery.contrib.testing.worker import start_worker
from sqlalchemy import create_engine, text
from sqlmodel import select

from orchestration import Agent, Orchestrator, Settings, Workflow, WorkflowStatus
from storage.db import session_scope
from storage.db_retry import retrying
from storage.models import TraceRow

pytestmark = pytest.mark.integration

RUNS = 12


@pytest.fixture
def orc(server_settings: Settings) -> Iterator[Orchestrator]:
    # Leases far longer than the test: a step recovers by the workers retrying, or not at all.
    settings = server_settings.model_copy(
        update={"lease_margin_s": 3600.0, "lost_request_after_s": 1.0}
    )
    orc = Orchestrator("restart", settings)
    for agent_id in ("researcher", "writer"):
        orc.register_agent(
            Agent(id=agent_id, model="offline:slow?latency=0.2", timeout_s=2, max_retries=5)
        )
    orc.register_workflow(Workflow.sequence("pair", ["researcher", "writer"]))
    orc.ensure_ready()
    queues = ["coordinator", "agent.researcher", "agent.writer"]
    with start_worker(
        orc.celery, pool="threads", concurrency=8, perform_ping_check=False, queues=queues
    ):
        yield orc
    orc.close()


def _drop_every_connection(url: str) -> int:
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        dropped = connection.execute(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        ).scalar_one()
    admin.dispose()
    return int(dropped)


def test_workers_ride_out_every_database_connection_being_dropped(orc: Orchestrator) -> None:
    runs = [orc.submit("pair", f"topic {n}") for n in range(RUNS)]
    dropped = 0
    for _ in range(2):
        time.sleep(0.3)  # steps are claiming, calling and recording
        dropped += _drop_every_connection(orc.database_url)
    assert dropped > 0

    deadline = time.monotonic() + 20
    results = []
    for run in runs:
        while True:
            result = retrying(run.result, "poll a run")
            if result.finished or time.monotonic() > deadline:
                break
            retrying(orc.maintenance().sweep, "sweep")  # routes what a lost commit had recorded
            time.sleep(0.3)
        results.append(result)

    assert [r.status for r in results] == [WorkflowStatus.SUCCEEDED] * RUNS
    with session_scope(orc.database_url) as session:
        traces = session.exec(
            select(TraceRow.step_id, TraceRow.attempt).where(
                TraceRow.workflow_id.in_([r.id for r in results])  # type: ignore[attr-defined]
            )
        ).all()
    assert max(Counter(traces).values()) == 1  # no attempt recorded twice
    print(f"\ndropped {dropped} connection(s); {RUNS} runs, {len(traces)} calls recorded")
