"""Recovery needs no singleton: coordinators and agent workers only, no beat.

Sixty workflows go through while the agent worker is SIGKILLed six times and Redis loses all its
data once: every one completes, the coordinators' own sweeps bringing back what the kills and
the flush lost. Then the coordinator holding the sweep lease is SIGKILLed for good: the other one
takes the sweeps over, and a run whose request the broker lost still completes.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from sqlmodel import select

from bus.broker_view import BrokerView
from orchestration import Orchestrator, WorkflowStatus
from orchestration.orchestrator import WORKFLOW_SWEEP
from storage.db import session_scope
from storage.embedded import EmbeddedRedis
from storage.lease_store import LeaseStore
from storage.models import StepRow
from tests.system.conftest import Fleet, finished_runs
from workers.processes import wait_for_workers

pytestmark = [pytest.mark.integration, pytest.mark.system, pytest.mark.timeout(400)]

WORKFLOWS = 60
KILLS = 6
FLUSH_AFTER_FINISHED = 20
FINISH_WITHIN_S = 240
LEASE_S = 3.0


@pytest.fixture
def private_redis() -> Iterator[EmbeddedRedis]:
    """A Redis of this test's own: flushing it cannot touch another test's keys."""
    with EmbeddedRedis() as server:
        yield server


@pytest.fixture
def extra_env(private_redis: EmbeddedRedis) -> dict[str, str]:
    return {
        "AGENTYARD_REDIS_URL": private_redis.url,
        "SAMPLE_TEAM_NAME": f"nobeat{uuid.uuid4().hex[:8]}",
        "SAMPLE_TEAM_MODEL": "offline:echo?latency=0.2",
        "SAMPLE_TEAM_MAX_RETRIES": "8",
        "SAMPLE_TEAM_TIMEOUT_S": "3",
        "AGENTYARD_LOG_LEVEL": "INFO",
        "AGENTYARD_LEASE_MARGIN_S": "1",
        "AGENTYARD_SWEEP_INTERVAL_S": "0.5",
        "AGENTYARD_SWEEP_LEASE_S": str(LEASE_S),
        "AGENTYARD_VISIBILITY_TIMEOUT_S": "8",
        "AGENTYARD_TASK_TIME_LIMIT_S": "6",
        "AGENTYARD_LOST_REQUEST_AFTER_S": "2",
    }


def _wait(condition: Callable[[], bool], within_s: float, what: str) -> float:
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < within_s, f"{what}: not within {within_s}s"
        time.sleep(0.1)
    return time.monotonic() - started


def test_coordinators_recover_kills_a_redis_flush_and_the_loss_of_the_sweeps_holder(
    orc: Orchestrator, env: dict[str, str], tmp_path: Path, private_redis: EmbeddedRedis
) -> None:
    fleet = Fleet(env, tmp_path)
    fleet.start("coordinator-a", "--coordinator", "--concurrency", "4")
    fleet.start("coordinator-b", "--coordinator", "--concurrency", "4")
    fleet.start("agents", "--all-agents", "--concurrency", "8")
    client = redis.Redis.from_url(private_redis.url)
    leases = LeaseStore(client, team=orc.name, key_prefix=orc.settings.redis_key_prefix)
    try:
        wait_for_workers(orc.celery, 3, processes=list(fleet.workers.values()))

        # Phase 1: sixty workflows, six kills of the agent worker, one flush of Redis
        ids = [orc.submit("research", f"topic {n}").id for n in range(WORKFLOWS)]
        started = time.monotonic()
        flushed = False
        while (finished := finished_runs(orc, ids)) < WORKFLOWS:
            assert time.monotonic() - started < FINISH_WITHIN_S, (
                f"only {finished} of {WORKFLOWS} workflows finished in {FINISH_WITHIN_S}s, "
                f"after {dict(fleet.kills)} kills"
            )
            if fleet.kills["agents"] < KILLS and finished >= fleet.kills["agents"] * 7:
                time.sleep(0.5)  # let it take messages and start calls before it dies
                fleet.kill_and_restart("agents")
            if not flushed and finished >= FLUSH_AFTER_FINISHED:
                client.flushall()
                flushed = True
            time.sleep(0.1)
        results = [orc.run(run_id).result() for run_id in ids]
        assert [r.status for r in results] == [WorkflowStatus.SUCCEEDED] * WORKFLOWS
        assert fleet.kills["agents"] == KILLS and flushed

        # Phase 2: the coordinator holding the sweep lease dies for good
        holder = leases.holder(WORKFLOW_SWEEP)
        assert holder is not None, "no coordinator holds the sweep lease"
        pid = int(holder.split(":")[1])
        doomed = next(r for r, w in fleet.workers.items() if r.startswith("coord") and w.pid == pid)
        survivor = next(r for r in fleet.workers if r.startswith("coord") and r != doomed)
        fleet.kill(doomed)

        # ... and, while the sweeps have no holder, the broker loses a run's request: no agent
        # worker runs when it is submitted, and its queue is emptied before one starts again
        fleet.kill("agents")
        lost = orc.submit("research", "a request the broker loses")
        broker = BrokerView(client, orc.settings.redis_key_prefix)
        _wait(lambda: broker.queue_depth("agent.researcher") == 1, 10, "the request queued")
        client.delete(*broker.band_keys("agent.researcher"))
        fleet.start("agents", "--all-agents", "--concurrency", "8")

        # Then the surviving coordinator takes the sweeps over within the lease's time...
        took_over_s = _wait(
            lambda: (
                (leases.holder(WORKFLOW_SWEEP) or "").split(":")[1:2]
                == [str(fleet.workers[survivor].pid)]
            ),
            LEASE_S + 15,
            "the other coordinator taking the sweeps over",
        )
        # ... and finds the lost request, so the run completes
        result = lost.wait(timeout=90)
        assert result.status is WorkflowStatus.SUCCEEDED
        with session_scope(orc.database_url) as session:
            first = session.exec(
                select(StepRow).where(StepRow.workflow_id == lost.id, StepRow.position == 0)
            ).one()
        assert first.attempt == 2  # the lost attempt was given up, the next one dispatched
        print(
            f"\nrecovery without beat: {WORKFLOWS} workflows through {KILLS} kills of the agent "
            f"worker and a Redis flush; the sweeps' holder {doomed} killed, {survivor} took "
            f"over in {took_over_s:.1f}s; the run whose request was lost finished at attempt "
            f"{first.attempt}"
        )
    finally:
        fleet.stop()
        client.close()
