"""Real `agentyard worker` and `celery worker` processes, driven from this process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlmodel import col, func, select

from orchestration import Orchestrator, WorkflowStatus
from storage.db import session_scope
from storage.models import MessageRow, TraceRow
from tests.system.conftest import ROOT, TEAM, agentyard, started_workers
from workers.processes import WorkerProcess, wait_for_workers

pytestmark = [pytest.mark.integration, pytest.mark.system]


@pytest.fixture
def running_workers(
    tmp_path: Path, env: dict[str, str], orc: Orchestrator
) -> Iterator[list[WorkerProcess]]:
    with started_workers(
        orc,
        env,
        tmp_path,
        ("--coordinator", "--concurrency", "4"),
        ("--agents", "researcher,writer", "--concurrency", "8"),
        ("--agents", "reviewer", "--concurrency", "8"),
    ) as processes:
        yield processes


def test_workflows_submitted_from_python_run_on_worker_processes(
    orc: Orchestrator, running_workers: list[WorkerProcess]
) -> None:
    runs = [orc.submit("research", f"topic number {i}", priority=i % 10) for i in range(12)]
    results = [run.wait(timeout=120) for run in runs]

    assert [r.status for r in results] == [WorkflowStatus.SUCCEEDED] * 12
    for result in results:
        assert [s.agent for s in result.steps] == ["researcher", "writer", "reviewer"]
        assert result.output and result.cost_usd > 0
    ids = [r.id for r in results]
    with session_scope(orc.database_url) as session:
        traces = session.exec(
            select(func.count()).select_from(TraceRow).where(col(TraceRow.workflow_id).in_(ids))
        ).one()
        messages = session.exec(
            select(func.count())
            .select_from(MessageRow)
            .where(col(MessageRow.workflow_id).in_(ids), col(MessageRow.delivered_at).is_not(None))
        ).one()
    assert traces == 36  # one model call per step, no more
    assert messages == 12 * 3 * 2  # a request and a response per step, each delivered


def test_another_process_reattaches_to_a_run_by_id(
    orc: Orchestrator, running_workers: list[WorkerProcess], env: dict[str, str]
) -> None:
    run = orc.submit("research", "the telegraph")
    script = (
        "import json, sys\n"
        "from orchestration.loader import load_orchestrator\n"
        f"result = load_orchestrator({TEAM!r}).run(sys.argv[1]).wait(timeout=60)\n"
        "print(json.dumps({'id': result.id, 'status': result.status.value,\n"
        "                  'steps': len(result.steps), 'cost': result.cost_usd}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, run.id],
        env={**os.environ, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=90,
        check=True,
    )

    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["id"] == run.id and seen["status"] == "succeeded" and seen["steps"] == 3
    assert seen["cost"] == pytest.approx(run.result().cost_usd)


def test_the_cli_runs_a_workflow_and_shows_it_again_by_id(
    running_workers: list[WorkerProcess], env: dict[str, str]
) -> None:
    ran = agentyard(env, "run", TEAM, "research", "the telegraph", "--priority", "7")
    assert ran.returncode == 0, ran.stderr
    run_id = ran.stdout.split("submitted run ", 1)[1].split()[0]
    assert "status succeeded" in ran.stdout

    status = agentyard(env, "status", run_id, "--brief")
    assert status.returncode == 0, status.stderr
    assert f"run {run_id}" in status.stdout and "status succeeded" in status.stdout
    assert status.stdout.count("succeeded") >= 4  # the run and its three steps


def test_plain_celery_workers_serve_the_same_queues(
    tmp_path: Path, env: dict[str, str], orc: Orchestrator
) -> None:
    celery = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "tests.system.sample_team",
        "worker",
        "--pool",
        "threads",
        "--concurrency",
        "4",
        "--loglevel",
        "INFO",
    ]
    log = open(tmp_path / "celery.log", "wb")  # noqa: SIM115
    processes = [
        subprocess.Popen(
            [*celery, "-Q", "coordinator", "-n", "coord@%h"],
            env={**os.environ, **env},
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        ),
        subprocess.Popen(
            [*celery, "-Q", "agent.researcher,agent.writer,agent.reviewer", "-n", "agents@%h"],
            env={**os.environ, **env},
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        ),
    ]
    try:
        wait_for_workers(orc.celery, 2)
        result = orc.submit("research", "the telegraph").wait(timeout=60)
        assert result.status is WorkflowStatus.SUCCEEDED
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=20)
        log.close()


def test_a_malformed_team_path_on_the_cli_is_a_clear_error(env: dict[str, str]) -> None:
    out = agentyard(env, "run", "team/orc", "w", "x")
    assert out.returncode == 2
    assert "is not a module path" in out.stderr
    assert "Traceback" not in out.stderr
