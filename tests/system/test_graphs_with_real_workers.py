"""Workflow graphs on real worker processes, PostgreSQL and Redis: a SIGKILL during a fan-out or
a loop delays a run and never loses or doubles its work; a fan-out under a budget starts only
what the budget can hold; ``max_parallel`` holds across worker processes."""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import func
from sqlmodel import col, select

from orchestration import Orchestrator, WorkflowStatus
from orchestration.pricing import usd_to_micro
from storage import statements
from storage.db import session_scope
from storage.models import NodeRunRow, StepRow, TraceRow
from tests.system.conftest import ROOT, until
from workers.processes import WorkerProcess, wait_for_workers

pytestmark = [pytest.mark.integration, pytest.mark.system]

TEAM = "tests.system.graph_team:orc"
KILLS = {
    "GRAPH_TEAM_SUMMARIZER_MODEL": "offline:slow?latency=1.0",
    "GRAPH_TEAM_MODEL": "offline:slow?latency=0.4",
    "GRAPH_TEAM_TIMEOUT_S": "3",
    "AGENTYARD_LEASE_MARGIN_S": "1",
    "AGENTYARD_SWEEP_INTERVAL_S": "0.5",
    # what the killed worker had received but not started comes back after this
    "AGENTYARD_VISIBILITY_TIMEOUT_S": "8",
    "AGENTYARD_TASK_TIME_LIMIT_S": "6",
    # what it had popped but not recorded, the broker lost: the sweep sends it again
    "AGENTYARD_LOST_REQUEST_AFTER_S": "3",
}
BUDGET_USD = 0.015
BUDGET = {
    "GRAPH_TEAM_NAME": "graph-budget",  # its own cost ledger: the test database is shared
    # 48 tokens is less than what the offline model writes: every call is cut there, so what it
    # costs is close to the worst case held for it
    "GRAPH_TEAM_MAX_TOKENS": "48",
    "GRAPH_TEAM_RUN_BUDGET_USD": str(BUDGET_USD),
}
PARALLEL = {
    "GRAPH_TEAM_SUMMARIZER_MODEL": "offline:slow?latency=0.5",
    "GRAPH_TEAM_MAX_PARALLEL": "3",
}


@pytest.fixture
def orc(env: dict[str, str]) -> Orchestrator:
    import tests.system.graph_team as module

    return importlib.reload(module).orc


@contextmanager
def _workers(
    orc: Orchestrator, env: dict[str, str], logs: Path, **specs: tuple[str, ...]
) -> Iterator[dict[str, WorkerProcess]]:
    """Worker processes of the graph team by name, started and answering; stopped when the
    block ends."""
    started = {name: _worker(env, logs, name, *args).start() for name, args in specs.items()}
    try:
        wait_for_workers(orc.celery, len(started), processes=list(started.values()))
        yield started
    finally:
        for process in started.values():
            process.stop()


def _worker(env: dict[str, str], logs: Path, name: str, *args: str) -> WorkerProcess:
    return WorkerProcess(
        TEAM, *args, "--name", name, env=env, cwd=ROOT, log_path=logs / f"{name}.log"
    )


def _running(orc: Orchestrator, ids: list[str], node: str) -> int:
    """How many steps of ``node`` (a prefix: 'loop1/' for the loop's) run now in runs ``ids``."""
    with session_scope(orc.database_url) as session:
        return int(
            session.exec(
                select(func.count())
                .select_from(StepRow)
                .where(
                    col(StepRow.workflow_id).in_(ids),
                    col(StepRow.node).startswith(node),
                    StepRow.status == "running",
                )
            ).one()
        )


@pytest.mark.parametrize("extra_env", [KILLS])
def test_a_worker_killed_during_a_fan_out_and_then_a_loop_loses_nothing_and_joins_once(
    orc: Orchestrator, env: dict[str, str], tmp_path: Path
) -> None:
    items = "\n".join(f"source {n}" for n in range(6))
    with _workers(
        orc,
        env,
        tmp_path,
        coordinator=("--coordinator", "--concurrency", "4"),
        agents1=("--all-agents", "--concurrency", "8"),
    ) as fleet:
        runs = [orc.submit("digest", items) for _ in range(3)]
        ids = [run.id for run in runs]

        # Given branches of the fan-outs in the middle of their calls, their worker is killed
        until(lambda: _running(orc, ids, "fan_out1/") >= 2, "branches under way", timeout_s=30)
        fleet.pop("agents1").kill()
        fleet["agents2"] = _worker(env, tmp_path, "agents2", "--all-agents", "--concurrency", "8")
        fleet["agents2"].start()
        # and then, with iterations of the loops under way, the next one
        until(lambda: _running(orc, ids, "loop1/") >= 1, "an iteration under way", timeout_s=90)
        fleet.pop("agents2").kill()
        fleet["agents3"] = _worker(env, tmp_path, "agents3", "--all-agents", "--concurrency", "8")
        fleet["agents3"].start()

        results = [run.wait(timeout=120) for run in runs]

    assert [r.status for r in results] == [WorkflowStatus.SUCCEEDED] * 3
    for result in results:
        nodes = [step.node for step in result.steps]
        assert nodes.count("fan_out1/summarizer") == 6
        assert nodes.count("writer") == 1  # the join happened once: the writer ran once
        assert nodes.count("loop1/editor") == nodes.count("loop1/critic") == 3
        assert [(o.iterations, o.stopped_by) for o in result.loops] == [(3, "max_iterations")]
    assert any(step.attempt > 1 for r in results for step in r.steps)  # the kills cost attempts
    with session_scope(orc.database_url) as session:
        calls = session.exec(
            select(TraceRow.step_id, TraceRow.attempt, func.count())
            .where(col(TraceRow.workflow_id).in_(ids))
            .group_by(col(TraceRow.step_id), col(TraceRow.attempt))
        ).all()
        succeeded = session.exec(
            select(TraceRow.step_id, func.count())
            .where(col(TraceRow.workflow_id).in_(ids), TraceRow.outcome == "succeeded")
            .group_by(col(TraceRow.step_id))
        ).all()
        fan_outs = session.exec(
            select(NodeRunRow).where(
                col(NodeRunRow.workflow_id).in_(ids), NodeRunRow.kind == "fan_out"
            )
        ).all()
    assert all(count == 1 for _, _, count in calls)  # every attempt called the model once at most
    assert len(succeeded) == sum(len(r.steps) for r in results)
    assert all(count == 1 for _, count in succeeded)  # and every step succeeded once
    assert [(r.status, r.progress["succeeded"], r.progress["running"]) for r in fan_outs] == [
        ("succeeded", 6, 0)
    ] * 3


@pytest.mark.parametrize("extra_env", [BUDGET])
def test_a_fan_out_of_100_under_a_budget_for_about_30_calls_starts_only_what_it_can_pay(
    orc: Orchestrator, env: dict[str, str], tmp_path: Path
) -> None:
    items = "\n".join(f"i{n}" for n in range(100))
    with _workers(
        orc,
        env,
        tmp_path,
        coordinator=("--coordinator", "--concurrency", "4"),
        agents=("--all-agents", "--concurrency", "8"),
    ):
        result = orc.submit("wide", items).wait(timeout=120)

    assert result.status is WorkflowStatus.BUDGET_EXCEEDED, result.error
    made = [step for step in result.steps if step.node == "fan_out1/summarizer"]
    assert 20 <= len(made) <= 45  # about 30: what the budget could pay for, and no more
    # branches it could not afford were never started: every one that was made was paid for
    assert all(step.status == "succeeded" and step.attempt == 1 for step in made)
    assert result.error is not None and f"{len(made)} of 100 ran" in result.error
    assert result.output is not None and all(
        step.output is not None and step.output in result.output for step in made
    )  # the run keeps what finished
    ledger = statements.ledger
    with session_scope(orc.database_url) as session:
        spent = int(
            session.exec(
                select(func.sum(ledger.c.cost_micro)).where(ledger.c.workflow_id == result.id)
            ).one()
            or 0
        )
    print(f"budget fan-out: {len(made)} of 100 branches ran, ${spent / 1e6:.6f} of ${BUDGET_USD}")
    store = orc.budget_store()
    assert store is not None
    assert 0 < spent <= usd_to_micro(BUDGET_USD)  # no overshoot
    assert store.spent(f"run:{result.id}", "total") == spent  # Redis and the ledger agree


@pytest.mark.parametrize("extra_env", [PARALLEL])
def test_max_parallel_holds_across_worker_processes(
    orc: Orchestrator, env: dict[str, str], tmp_path: Path
) -> None:
    items = "\n".join(f"source {n}" for n in range(12))
    with _workers(
        orc,
        env,
        tmp_path,
        coordinator=("--coordinator", "--concurrency", "4"),
        agents1=("--all-agents", "--concurrency", "4"),
        agents2=("--all-agents", "--concurrency", "4"),
    ):
        result = orc.submit("digest", items).wait(timeout=120)

    assert result.status is WorkflowStatus.SUCCEEDED, result.error
    branches = [step for step in result.steps if step.node == "fan_out1/summarizer"]
    assert len(branches) == 12
    moments: list[tuple[datetime, int]] = []
    for step in branches:
        assert step.started_at is not None and step.finished_at is not None
        moments += [(step.started_at, 1), (step.finished_at, -1)]
    under_way, most = 0, 0
    for _, change in sorted(moments):  # at a tie, the one that finished first
        under_way += change
        most = max(most, under_way)
    # eight threads in two processes could have run eight at once: never more than three did
    print(f"max_parallel=3: at most {most} branch(es) under way at once, of 12")
    assert 2 <= most <= 3
    # and both processes ran branches of it (each logs the steps it finished)
    for name in ("agents1", "agents2"):
        lines = (tmp_path / f"{name}.log").read_text(errors="replace").splitlines()
        finished = [
            json.loads(line) for line in lines if line.startswith("{") and '"step.finished"' in line
        ]
        assert any(line.get("agent_id") == "summarizer" for line in finished), name


@pytest.mark.parametrize("extra_env", [{}])
def test_a_check_on_real_workers_has_a_refused_answer_asked_again_then_lets_it_on(
    orc: Orchestrator, env: dict[str, str], tmp_path: Path
) -> None:
    with _workers(
        orc,
        env,
        tmp_path,
        coordinator=("--coordinator", "--concurrency", "2"),
        agents=("--all-agents", "--concurrency", "4"),
    ):
        result = orc.submit("checked", "the telegraph").wait(timeout=60)

    assert result.status is WorkflowStatus.SUCCEEDED, result.error
    writer, editor = result.steps
    assert [(c.name, c.ok, c.attempt) for c in writer.checks] == [
        ("answered_again", False, 1),
        ("answered_again", True, 2),
    ]
    assert (writer.attempt, editor.status, editor.attempt) == (2, "succeeded", 1)
