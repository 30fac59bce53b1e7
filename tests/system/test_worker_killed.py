"""A worker SIGKILLed mid-step delays its workflows; it never loses them or pays twice.

Three ways back: a step the worker had claimed comes back when its lease runs out (the sweep);
a message it had received but not started is dispatched again by the sweep once it has been held
unstarted a while (the broker would give it back only after the visibility timeout); a message
it had popped but not yet recorded (lost by the broker) is found missing by the sweep and
dispatched again.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
from sqlmodel import col, func, select

from bus.broker_view import BrokerView
from orchestration import Orchestrator, WorkflowStatus
from storage.db import session_scope
from storage.models import StepRow, TraceRow
from tests.system.conftest import ON_BOTH_BROKERS, ROOT, TEAM
from workers.processes import WorkerProcess, wait_for_workers

pytestmark = [pytest.mark.integration, pytest.mark.system]


@pytest.fixture
def extra_env() -> dict[str, str]:
    return {
        "SAMPLE_TEAM_MODEL": "offline:slow?latency=1.5",
        "SAMPLE_TEAM_TIMEOUT_S": "3",
        "AGENTYARD_LEASE_MARGIN_S": "1",
        "AGENTYARD_SWEEP_INTERVAL_S": "0.5",
        # A message the killed worker had received but not started is dispatched again by the
        # sweep once it has been held unstarted this long.
        "AGENTYARD_UNCLAIMED_REQUEST_AFTER_S": "3",
        "AGENTYARD_VISIBILITY_TIMEOUT_S": "8",
        "AGENTYARD_TASK_TIME_LIMIT_S": "6",
        # A message the killed worker had popped but not yet recorded is lost by the broker:
        # the sweep finds it missing and dispatches the step again.
        "AGENTYARD_LOST_REQUEST_AFTER_S": "3",
    }


def _running_steps(orc: Orchestrator) -> int:
    with session_scope(orc.database_url) as session:
        return int(
            session.exec(
                select(func.count()).select_from(StepRow).where(StepRow.status == "running")
            ).one()
        )


def _dump(orc: Orchestrator, tmp_path: Path) -> None:
    with session_scope(orc.database_url) as session:
        for step in session.exec(select(StepRow).order_by(col(StepRow.workflow_id))).all():
            print(
                step.workflow_id[:8],
                step.position,
                step.status,
                step.attempt,
                step.error_kind,
                step.lease_until,
                step.due_at,
            )
    for log in tmp_path.glob("*.log"):
        print("=====", log.name)
        print("\n".join(log.read_text(errors="replace").splitlines()[-40:]))


@ON_BOTH_BROKERS
def test_a_killed_agent_worker_loses_no_workflow_and_no_step_is_paid_twice(
    orc: Orchestrator, env: dict[str, str], tmp_path: Path
) -> None:
    def worker(name: str, *args: str) -> WorkerProcess:
        return WorkerProcess(
            TEAM, *args, "--name", name, env=env, cwd=ROOT, log_path=tmp_path / f"{name}.log"
        )

    coordinator = worker("coordinator", "--coordinator", "--concurrency", "4").start()
    doomed = worker("doomed", "--all-agents", "--concurrency", "8").start()
    survivor: WorkerProcess | None = None
    try:
        wait_for_workers(orc.celery, 2, processes=[coordinator, doomed])
        runs = [orc.submit("research", f"topic {i}") for i in range(4)]

        # Given steps in the middle of their model calls
        deadline = time.monotonic() + 30
        while _running_steps(orc) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _running_steps(orc) >= 2
        # When their worker is killed without warning, and another one comes up
        doomed.kill()
        survivor = worker("survivor", "--all-agents", "--concurrency", "8").start()

        # Then every workflow still finishes
        try:
            results = [run.wait(timeout=60) for run in runs]
        except Exception:
            _dump(orc, tmp_path)
            raise
    finally:
        for process in (survivor, doomed, coordinator):
            if process is not None:
                process.stop()

    assert [r.status for r in results] == [WorkflowStatus.SUCCEEDED] * 4
    assert any(step.attempt > 1 for r in results for step in r.steps)
    with session_scope(orc.database_url) as session:
        ids = [r.id for r in results]
        succeeded_calls = session.exec(
            select(TraceRow.step_id, func.count())
            .where(col(TraceRow.workflow_id).in_(ids), TraceRow.outcome == "succeeded")
            .group_by(col(TraceRow.step_id))
        ).all()
    # exactly one successful model call per step: the killed attempts never completed, and the
    # redelivered stale messages were turned away by the claim
    assert len(succeeded_calls) == 12
    assert all(count == 1 for _, count in succeeded_calls)


def test_a_request_a_killed_worker_held_without_starting_it_runs_long_before_the_visibility_timeout(
    orc: Orchestrator, env: dict[str, str], tmp_path: Path
) -> None:
    env = {**env, "AGENTYARD_VISIBILITY_TIMEOUT_S": "3600", "AGENTYARD_TASK_TIME_LIMIT_S": "6"}
    coordinator = WorkerProcess(
        TEAM, "--coordinator", env=env, cwd=ROOT, log_path=tmp_path / "coordinator.log"
    ).start()
    holder: subprocess.Popen[str] | None = None
    agents: WorkerProcess | None = None
    client = redis.Redis.from_url(orc.settings.effective_broker_url or "")
    broker = BrokerView(client, orc.settings.redis_key_prefix)
    try:
        wait_for_workers(orc.celery, 1, processes=[coordinator])
        run = orc.submit("research", "the telegraph")
        # Given a worker that took the first step's request from its queue and died holding it
        holder = subprocess.Popen(
            [sys.executable, "-m", "tests.system.held_request", orc.team.agent("researcher").queue],
            env={**os.environ, **env},
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert holder.stdout is not None
        held_id = holder.stdout.readline().split()[-1]
        holder.kill()
        holder.wait()
        holder.stdout.close()
        assert held_id in broker.unacked_task_ids()

        # When a live worker serves the queue
        agents = WorkerProcess(
            TEAM, "--all-agents", env=env, cwd=ROOT, log_path=tmp_path / "agents.log"
        ).start()
        wait_for_workers(orc.celery, 2, processes=[coordinator, agents])

        # Then the run completes, its first step on a second attempt, while the broker still
        # holds the dead worker's copy (it would give it back only after an hour)
        result = run.wait(timeout=60)
    finally:
        for process in (agents, coordinator):
            if process is not None:
                process.stop()
        if holder is not None and holder.poll() is None:
            holder.kill()
            holder.wait()

    try:
        assert result.status is WorkflowStatus.SUCCEEDED
        assert [step.attempt for step in result.steps] == [2, 1, 1]
        assert held_id in broker.unacked_task_ids()
    finally:
        client.close()
