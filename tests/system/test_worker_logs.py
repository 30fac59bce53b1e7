"""A worker's log, read as a machine reads it: with AGENTYARD_LOG_FORMAT=json every line its
process writes (standard output and error, from the first to the shutdown) is one JSON object
with a level and an event, Celery's lines as much as agentyard's; and an idle coordinator, even
one that runs beat, writes nothing at INFO about its sweeps."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from bus.routing import ACK_SWEEP_TASK, SWEEP_TASK
from orchestration import Orchestrator, WorkflowStatus
from tests.system.conftest import started_workers

pytestmark = [pytest.mark.integration, pytest.mark.system]

API_KEY = "sk-ant-api03-worker-logs-test-key-0123456789"  # configured, and never logged
LEVELS = {"debug", "info", "warning", "error", "critical"}
# What a coordinator says once about its sweeps, not once a period.
ONCE = {"sweeps.started", "sweep.lease_taken", "sweep.lease_released"}


@pytest.fixture
def extra_env() -> dict[str, str]:
    return {
        "AGENTYARD_ANTHROPIC_API_KEY": API_KEY,
        # Sweeps five times a second, so that many come and go while the test looks.
        "AGENTYARD_SWEEP_INTERVAL_S": "0.2",
        "AGENTYARD_ACK_SWEEP_INTERVAL_S": "0.2",
    }


def _lines(log: Path) -> list[dict[str, Any]]:
    """Every line of the log as a JSON object; fails on the first that is not one."""
    lines = []
    for number, text in enumerate(log.read_text().splitlines(), 1):
        try:
            line = json.loads(text)
        except json.JSONDecodeError:
            pytest.fail(f"line {number} of {log.name} is not JSON: {text!r}")
        assert isinstance(line, dict), f"line {number} is not an object: {text!r}"
        assert line.get("level") in LEVELS, f"line {number} has no level: {text!r}"
        assert isinstance(line.get("event"), str), f"line {number} has no event: {text!r}"
        lines.append(line)
    return lines


def test_every_line_of_a_worker_that_ran_a_workflow_is_one_json_object(
    orc: Orchestrator, env: dict[str, str], tmp_path: Path
) -> None:
    # Given one worker serving the coordinator and every agent
    with started_workers(orc, env, tmp_path, ("--coordinator", "--all-agents")):
        # When a workflow runs to its end, and the worker is stopped (SIGTERM)
        result = orc.submit("research", "the telegraph").wait(timeout=60)
    assert result.status is WorkflowStatus.SUCCEEDED

    # Then every line it wrote is one JSON object with a level and an event
    log = tmp_path / "worker0.log"
    lines = _lines(log)
    assert API_KEY not in log.read_text()

    # ... agentyard's step events at INFO, with their ids
    finished = {
        line["step_id"]: line
        for line in lines
        if line["event"] == "step.finished" and line.get("workflow_id") == result.id
    }
    assert set(finished) == {step.id for step in result.steps}
    for step in result.steps:
        line = finished[step.id]
        assert (line["level"], line["agent_id"], line["outcome"]) == (
            "info",
            step.agent,
            "succeeded",
        )
        assert len(line["trace_id"]) == 32
    assert any(line["event"] == "workflow.finished" and line["level"] == "info" for line in lines)

    # ... and Celery's own lines (ready, task received) as JSON at their own level
    celery = [line for line in lines if str(line.get("logger", "")).startswith("celery.")]
    assert any(line["event"].endswith(" ready.") and line["level"] == "info" for line in celery)
    assert any(
        line["event"].startswith("Task agent.researcher[") and line["event"].endswith("received")
        for line in celery
    )
    # ... the banner replaced by one line, and the shutdown said as a line too
    [started] = [line for line in lines if line["event"] == "worker.started"]
    assert "coordinator" in started["queues"] and "agent.writer" in started["queues"]
    assert any(
        line["event"] == "worker.shutting_down" and line["signal"] == "SIGTERM" for line in lines
    )


@pytest.mark.parametrize("level", ["INFO", "DEBUG"])
def test_an_idle_coordinator_running_beat_says_nothing_at_info_about_its_sweeps(
    orc: Orchestrator, env: dict[str, str], tmp_path: Path, level: str
) -> None:
    # Given an idle coordinator whose beat sends both sweeps as tasks too, at `level`
    # (AGENTYARD_LOG_LEVEL for agentyard's lines, --loglevel for Celery's)
    spec = ("--coordinator", "--beat", "--loglevel", level)
    with started_workers(orc, {**env, "AGENTYARD_LOG_LEVEL": level}, tmp_path, spec):
        # When it has taken many sweep tasks from beat, each a sweep (and its threads as many)
        done = _wait_for_sweep_tasks(orc, at_least=5)
    assert done[ACK_SWEEP_TASK] >= 5 and done[SWEEP_TASK] >= 5

    lines = _lines(tmp_path / "worker0.log")
    about_sweeps = [line for line in lines if _about_a_sweep(line)]
    # Then at INFO and above it said only once that it sweeps, and nothing per sweep
    loud = [line for line in about_sweeps if line["level"] != "debug"]
    assert {line["event"] for line in loud} <= ONCE, loud
    assert len(loud) <= 5  # started; taken and released, each of two sweeps
    if level == "DEBUG":
        # ... while at DEBUG every sweep is there: beat's task, Celery's comings and goings,
        # and the sweep's own counts, all zero
        debug = [line for line in about_sweeps if line["level"] == "debug"]
        events = [line["event"] for line in debug]
        assert (
            sum(e.startswith(f"Task {ACK_SWEEP_TASK}[") and e.endswith("received") for e in events)
            >= 5
        )
        assert sum(e == "bus.acks_swept" for e in events) >= 5
        assert sum(e == "maintenance.swept" for e in events) >= 5
        swept = [line for line in debug if line["event"] == "maintenance.swept"]
        assert all(line["idle_workflows"] == line["expired_leases"] == 0 for line in swept)


def _about_a_sweep(line: dict[str, Any]) -> bool:
    event = line["event"]
    return any(word in event for word in ("sweep", "swept", SWEEP_TASK, ACK_SWEEP_TASK))


def _wait_for_sweep_tasks(
    orc: Orchestrator, at_least: int, timeout_s: float = 60.0
) -> dict[str, int]:
    """How many sweep tasks the one worker ran, once it ran ``at_least`` of each."""
    deadline = time.monotonic() + timeout_s
    done: dict[str, int] = {}
    while time.monotonic() < deadline:
        stats = orc.celery.control.inspect(timeout=1.0).stats() or {}
        done = {name: 0 for name in (SWEEP_TASK, ACK_SWEEP_TASK)}
        for worker in stats.values():
            for name in done:
                done[name] += int(worker.get("total", {}).get(name, 0))
        if min(done.values()) >= at_least:
            return done
    pytest.fail(f"the coordinator ran fewer than {at_least} of each sweep task: {done}")
