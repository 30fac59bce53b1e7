"""SIGTERM on a worker mid-step: the steps it is running finish and are recorded, it takes no new
ones, and it exits cleanly; the workflows finish on the next worker, every attempt the first."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
from sqlmodel import func, select

from orchestration import Orchestrator, WorkflowStatus
from storage.db import session_scope
from storage.models import StepRow, TraceRow
from tests.system.conftest import ROOT, TEAM
from workers.processes import WorkerProcess, wait_for_workers

pytestmark = [pytest.mark.integration, pytest.mark.system]


@pytest.fixture
def extra_env() -> dict[str, str]:
    return {"SAMPLE_TEAM_MODEL": "offline:slow?latency=1.5"}


def _count(orc: Orchestrator, model: type, runs: list[str], **where: object) -> int:
    """Rows of ``model`` of these runs (the database is shared with other tests)."""
    with session_scope(orc.database_url) as session:
        query = select(func.count()).select_from(model).where(model.workflow_id.in_(runs))  # type: ignore[attr-defined]
        for name, value in where.items():
            query = query.where(getattr(model, name) == value)
        return int(session.exec(query).one())


def test_a_worker_told_to_stop_finishes_its_running_steps_and_takes_no_new_ones(
    tmp_path: Path, env: dict[str, str], orc: Orchestrator
) -> None:
    def worker(name: str, *args: str) -> WorkerProcess:
        return WorkerProcess(TEAM, *args, env=env, cwd=ROOT, log_path=tmp_path / f"{name}.log")

    coordinator = worker("coordinator", "--coordinator").start()
    first = worker("first", "--all-agents", "--concurrency", "4").start()
    second = None
    try:
        wait_for_workers(orc.celery, 2, processes=[coordinator, first])
        runs = [orc.submit("research", f"topic {n}") for n in range(4)]
        ids = [run.id for run in runs]
        deadline = time.monotonic() + 30
        while _count(orc, StepRow, ids, status="running") < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _count(orc, StepRow, ids, status="running") == 4  # four calls under way

        assert first.process is not None
        first.process.send_signal(signal.SIGTERM)  # warm shutdown
        assert first.process.wait(timeout=30) == 0
        # The four calls finished and were recorded; nothing else was started.
        assert _count(orc, StepRow, ids, status="succeeded") == 4
        assert _count(orc, StepRow, ids, status="running") == 0

        second = worker("second", "--all-agents", "--concurrency", "4").start()
        results = [run.wait(timeout=60) for run in runs]
    finally:
        for process in (first, second, coordinator):
            if process is not None:
                process.stop()

    assert [r.status for r in results] == [WorkflowStatus.SUCCEEDED] * 4
    assert all(step.attempt == 1 for r in results for step in r.steps)  # nothing ran twice
    assert _count(orc, TraceRow, ids) == 12
