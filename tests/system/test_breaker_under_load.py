"""A healthy provider is never shut out by the system's own slowness.

Two processes burn both CPU cores; a fresh agent worker with 32 threads starts under them, a
backlog waiting, its agents on a 2 s deadline, the stub answering every call in 0.2 s. Of 300
calls, every answer the stub sent is used and no breaker opens, whatever the cold start, the GIL
and the starved CPUs did to the worker's own timings.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlmodel import col, select

from orchestration import Orchestrator, WorkflowStatus
from storage.db import session_scope
from storage.models import TraceRow
from tests.system.conftest import finished_runs, started_workers, stub_env
from workers.stub_anthropic import StubAnthropicServer

pytestmark = [pytest.mark.integration, pytest.mark.system, pytest.mark.timeout(500)]

WORKFLOWS = 100  # three steps each: 300 calls
DEADLINE_S = 2.0


@pytest.fixture
def stub() -> Iterator[StubAnthropicServer]:
    with StubAnthropicServer(latency_s=0.2) as server:
        yield server


@pytest.fixture
def extra_env(stub: StubAnthropicServer) -> dict[str, str]:
    return {
        **stub_env(stub),
        "SAMPLE_TEAM_NAME": f"loaded{uuid.uuid4().hex[:8]}",
        "SAMPLE_TEAM_TIMEOUT_S": str(DEADLINE_S),
        "SAMPLE_TEAM_MAX_TOKENS": "64",
        "SAMPLE_TEAM_BREAKER_THRESHOLD": "5",
        "AGENTYARD_LOG_LEVEL": "WARNING",
    }


@pytest.fixture
def cpu_hogs() -> Iterator[None]:
    """Two processes that burn a core each for as long as the test runs."""
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        yield
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()


def test_a_healthy_provider_keeps_its_breaker_closed_on_a_cold_worker_with_the_cpus_burning(
    orc: Orchestrator,
    env: dict[str, str],
    tmp_path: Path,
    stub: StubAnthropicServer,
    cpu_hogs: None,
) -> None:
    # Given a backlog of 100 three-step workflows, submitted before any worker runs
    orc.ensure_ready()
    ids = [orc.submit("research", f"topic {n}").id for n in range(WORKFLOWS)]

    # When a fresh agent worker with 32 threads (and a coordinator) start under the CPU hogs
    with started_workers(
        orc,
        env,
        tmp_path,
        ("--all-agents", "--concurrency", "32"),
        ("--coordinator", "--concurrency", "2"),
    ):
        started = time.monotonic()
        while (finished := finished_runs(orc, ids)) < WORKFLOWS:
            assert time.monotonic() - started < 180, f"{WORKFLOWS - finished} runs unfinished"
            time.sleep(0.5)

    # Then every run succeeded, on the first attempt of every step
    results = [orc.run(run_id).result() for run_id in ids]
    assert [r.status for r in results] == [WorkflowStatus.SUCCEEDED] * WORKFLOWS
    with session_scope(orc.database_url) as session:
        calls = session.exec(
            select(TraceRow.step_id, TraceRow.attempt, TraceRow.outcome, TraceRow.late).where(
                col(TraceRow.workflow_id).in_(ids)
            )
        ).all()
    outcomes = {outcome for _, _, outcome, _ in calls}
    late = sum(1 for *_, was_late in calls if was_late)
    print(f"\n{len(calls)} calls under two CPU hogs: outcomes {outcomes}, {late} used late")
    assert len(calls) == 3 * WORKFLOWS and outcomes == {"succeeded"}

    # ... every answer the stub sent was used: one 200 per call, each one a step's result
    stats = stub.stats()
    assert stats["by_status"] == {"200": 3 * WORKFLOWS}
    used = {f"{step}:{attempt}" for step, attempt, _, _ in calls}
    assert set(stats["by_request"]) == used

    # ... and no breaker ever opened
    breakers = orc.breaker_store()
    assert breakers is not None
    assert {b.agent: b.opened for b in breakers.states(sorted(orc.team.agents))} == {
        "researcher": 0,
        "reviewer": 0,
        "writer": 0,
    }
