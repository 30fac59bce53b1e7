"""An approval gate on real worker processes: the run waits at its gate holding nothing (no task
running, reserved or scheduled, nothing queued); every worker is SIGKILLed and started again and
Redis loses all its data; then a person approves from the shell (`agentyard approve`, no team
named: the database and broker of the environment), and the run completes, its next agent called
only after the approval. The approval webhook was called when the approval was asked for.
A rejection from the shell ends a run ``rejected``, and a gate nobody decides in time applies
its on_timeout (reject, approve, fail), by the coordinators' sweep."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from sqlmodel import select

from bus.broker_view import BrokerView
from orchestration import Orchestrator, WorkflowStatus
from storage.db import session_scope
from storage.embedded import EmbeddedRedis
from storage.models import ApprovalRow, StepRow, TraceRow, as_utc
from tests.conftest import Webhook
from tests.system.conftest import COORDINATOR_AND_AGENTS, Fleet, agentyard, started_workers, until
from workers.processes import wait_for_workers

pytestmark = [pytest.mark.integration, pytest.mark.system, pytest.mark.timeout(300)]

TEAM = "tests.system.approval_team:orc"
WAIT_S = 60.0


@pytest.fixture
def private_redis() -> Iterator[EmbeddedRedis]:
    """A Redis of this test's own: flushing it cannot touch another test's keys."""
    with EmbeddedRedis() as server:
        yield server


@pytest.fixture
def extra_env(private_redis: EmbeddedRedis, webhook: Webhook) -> dict[str, str]:
    return {
        "AGENTYARD_REDIS_URL": private_redis.url,
        "AGENTYARD_APPROVAL_WEBHOOK_URL": webhook.url,
        "AGENTYARD_SWEEP_INTERVAL_S": "0.5",
    }


@pytest.fixture
def orc(env: dict[str, str]) -> Orchestrator:
    import tests.system.approval_team as module

    return importlib.reload(module).orc


def _held_by_workers(orc: Orchestrator) -> list[object]:
    """Every task a worker runs, holds or has scheduled for later (an ETA)."""
    inspect = orc.celery.control.inspect(timeout=2.0)
    held: list[object] = []
    for answer in (inspect.active(), inspect.reserved(), inspect.scheduled()):
        assert answer is not None, "no worker answered"
        held += [task for tasks in answer.values() for task in tasks]
    return held


def test_a_run_waits_at_its_gate_through_kills_and_a_redis_flush_and_goes_on_once_approved(
    orc: Orchestrator,
    env: dict[str, str],
    tmp_path: Path,
    private_redis: EmbeddedRedis,
    webhook: Webhook,
) -> None:
    fleet = Fleet(env, tmp_path, team=TEAM)
    fleet.start("coordinator", "--coordinator", "--concurrency", "2")
    fleet.start("agents", "--all-agents", "--concurrency", "2")
    client = redis.Redis.from_url(private_redis.url)
    try:
        wait_for_workers(orc.celery, 2, processes=list(fleet.workers.values()))
        run = orc.submit("publish", "the telegraph")

        # It waits at the gate: a row in PostgreSQL, nothing on a queue or in a worker
        until(lambda: orc.approvals.pending(run.id), "the run waiting at its gate")
        [waiting] = orc.approvals.pending(run.id)
        assert run.result().status is WorkflowStatus.WAITING_APPROVAL
        broker = BrokerView(client, orc.settings.redis_key_prefix)
        assert [broker.queue_depth(q) for q in ("coordinator", "agent.publisher")] == [0, 0]
        assert _held_by_workers(orc) == []
        until(lambda: webhook.received, "the approval webhook")
        [hook] = webhook.received
        assert (hook["run_id"], hook["gate"], hook["subject_hash"]) == (
            run.id,
            "publish",
            waiting.subject_hash,
        )

        # Every worker dies, Redis loses all its data, the workers start again
        fleet.kill("coordinator")
        fleet.kill("agents")
        client.flushall()
        fleet.start("coordinator", "--coordinator", "--concurrency", "2")
        fleet.start("agents", "--all-agents", "--concurrency", "2")
        wait_for_workers(orc.celery, 2, processes=list(fleet.workers.values()))
        assert orc.approvals.pending(run.id) == [waiting]
        assert run.result().status is WorkflowStatus.WAITING_APPROVAL

        # A person approves from the shell, naming no team: the environment's database
        approved = agentyard(
            env,
            "approve",
            run.id,
            "publish",
            "--by",
            "alice",
            "--note",
            "read it",
            "--hash",
            waiting.subject_hash[:12],
        )
        assert approved.returncode == 0, approved.stderr
        assert approved.stdout.startswith(f"approved gate publish of run {run.id} as alice")

        result = run.wait(timeout=WAIT_S)
        assert result.status is WorkflowStatus.SUCCEEDED
        with session_scope(orc.database_url) as session:
            gate = session.exec(select(ApprovalRow).where(ApprovalRow.workflow_id == run.id)).one()
            publisher = session.exec(
                select(StepRow).where(StepRow.workflow_id == run.id, StepRow.node == "publisher")
            ).one()
            [call] = session.exec(select(TraceRow).where(TraceRow.step_id == publisher.id)).all()
        assert (gate.status, gate.decided_by, gate.note) == ("approved", "alice", "read it")
        assert gate.decided_at is not None and publisher.dispatched_at is not None
        decided_at = as_utc(gate.decided_at)
        assert as_utc(publisher.dispatched_at) >= decided_at  # made and sent after it
        assert as_utc(call.started_at) >= decided_at  # the publisher called after it

        # Deciding again is refused from the shell, and the trace shows the decision
        again = agentyard(env, "reject", run.id, "publish", "--by", "bob")
        assert again.returncode == 2 and again.stderr.startswith("agentyard: run ")
        traced = agentyard(env, "trace", run.id)
        assert traced.returncode == 0, traced.stderr
        assert f"approval publish  approved  by alice  hash {gate.subject_hash[:16]}" in (
            traced.stdout
        )
        print(
            f"\napproval through kills and a flush: asked at {as_utc(gate.requested_at):%X}, "
            f"approved at {decided_at:%X}, the publisher sent at "
            f"{as_utc(publisher.dispatched_at):%X.%f}"
        )
    finally:
        fleet.stop()
        client.close()


@pytest.fixture
def workers(orc: Orchestrator, env: dict[str, str], tmp_path: Path) -> Iterator[None]:
    with started_workers(orc, env, tmp_path, *COORDINATOR_AND_AGENTS, team=TEAM):
        yield


def test_a_rejection_from_the_shell_ends_the_run_rejected_and_the_next_agent_is_never_called(
    workers: None, orc: Orchestrator, env: dict[str, str]
) -> None:
    run = orc.submit("publish", "the telegraph")
    until(lambda: orc.approvals.pending(run.id), "the run waiting at its gate")

    rejected = agentyard(env, "reject", run.id, "publish", "--by", "bob", "--note", "too long")
    assert rejected.returncode == 0, rejected.stderr

    result = run.wait(timeout=WAIT_S)
    assert result.status is WorkflowStatus.REJECTED
    assert result.error == "ApprovalRejected: gate 'publish' was rejected by bob: too long"
    assert [step.agent for step in result.steps] == ["writer"]  # the publisher: never made


@pytest.mark.parametrize(
    ("on_timeout", "status", "agents"),
    [
        ("reject", WorkflowStatus.REJECTED, ["writer"]),
        ("approve", WorkflowStatus.SUCCEEDED, ["writer", "publisher"]),
        ("fail", WorkflowStatus.FAILED, ["writer"]),
    ],
)
def test_a_gate_nobody_decides_in_time_applies_its_on_timeout_by_the_sweep(
    workers: None,
    orc: Orchestrator,
    on_timeout: str,
    status: WorkflowStatus,
    agents: list[str],
) -> None:
    result = orc.submit(f"hasty_{on_timeout}", "the telegraph").wait(timeout=WAIT_S)

    assert result.status is status, result.error
    assert [step.agent for step in result.steps] == agents
    [gate] = result.approvals
    assert (gate.status, gate.decided_by, gate.on_timeout) == ("timed_out", None, on_timeout)
