"""A tool with side effects never runs twice, whatever crashes: the agent worker is killed with
SIGKILL after a tool finished and before the model's next answer came, or while a tool runs,
and another worker takes the step over."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from orchestration import Orchestrator, WorkflowStatus
from orchestration.results import WorkflowResult
from tests.system.conftest import ROOT, until
from tests.system.tool_support import TEAM, lines, tool_team, tool_team_env
from workers.processes import WorkerProcess, wait_for_workers
from workers.stub_anthropic import StubAnthropicServer

pytestmark = [pytest.mark.integration, pytest.mark.system]

PAUSE_S = 6  # how long a tool takes the first time it runs: the kill comes meanwhile


@pytest.fixture
def outbox(tmp_path: Path) -> Path:
    return tmp_path / "outbox.txt"


@pytest.fixture
def extra_env(stub: StubAnthropicServer, outbox: Path) -> dict[str, str]:
    return tool_team_env(
        stub,
        outbox,
        TOOL_TEAM_NAME="tools-killed",
        TOOL_TEAM_PAUSE_S=str(PAUSE_S),
        TOOL_TEAM_TIMEOUT_S="4",
        AGENTYARD_LEASE_MARGIN_S="1",
        AGENTYARD_SWEEP_INTERVAL_S="0.5",
        AGENTYARD_VISIBILITY_TIMEOUT_S="20",
        AGENTYARD_TASK_TIME_LIMIT_S="15",
        AGENTYARD_LOST_REQUEST_AFTER_S="3",
    )


@pytest.fixture
def orc(env: dict[str, str]) -> Orchestrator:
    return tool_team()


class Workers:
    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self._env, self._logs, self._count = env, logs, 0
        self.processes: list[WorkerProcess] = []

    def start(self, *args: str) -> WorkerProcess:
        self._count += 1
        name = f"worker{self._count}"
        process = WorkerProcess(
            TEAM,
            *args,
            "--name",
            name,
            env=self._env,
            cwd=ROOT,
            log_path=self._logs / f"{name}.log",
        ).start()
        self.processes.append(process)
        return process


@pytest.fixture
def workers(env: dict[str, str], tmp_path: Path) -> Iterator[Workers]:
    started = Workers(env, tmp_path)
    try:
        yield started
    finally:
        for process in started.processes:
            process.stop()


def _run_with_a_kill(
    orc: Orchestrator, workers: Workers, stub: StubAnthropicServer, when: Callable[[], bool]
) -> WorkflowResult:
    """Submit a run, SIGKILL the agent worker once ``when`` holds, start another; the run's end."""
    coordinator = workers.start("--coordinator", "--beat", "--concurrency", "2")
    doomed = workers.start("--all-agents", "--concurrency", "2")
    wait_for_workers(orc.celery, 2, processes=[coordinator, doomed])
    run = orc.submit("service", "tell Ada about order 7")
    until(when, "the moment to kill the agent worker")
    doomed.kill()
    survivor = workers.start("--all-agents", "--concurrency", "2")
    wait_for_workers(orc.celery, 2, processes=[coordinator, survivor])
    return run.wait(timeout=90)


def test_a_tool_that_finished_before_the_kill_is_replayed_not_run_again(
    orc: Orchestrator, workers: Workers, stub: StubAnthropicServer, outbox: Path
) -> None:
    stub.script(
        [
            {"tool_use": [{"name": "send_email", "input": {"to": "ada", "body": "on its way"}}]},
            {"delay_s": 60, "text": "never read: its worker is killed first"},
            {"text": "Ada was told."},
            {"text": "Reviewed."},
        ]
    )

    # killed once the email is sent and the model is being asked what next
    result = _run_with_a_kill(orc, workers, stub, lambda: stub.stats()["scripted_left"] <= 2)

    assert result.status is WorkflowStatus.SUCCEEDED, result.error
    clerk = result.steps[0]
    assert clerk.output == "Ada was told." and clerk.attempt >= 2
    assert len(lines(outbox, "email ")) == 1  # sent once
    assert len(lines(Path(f"{outbox}.started"), "send_email ")) == 1  # started once
    assert [(c.tool, c.runs, c.status) for c in clerk.tool_calls] == [
        ("send_email", 1, "succeeded")
    ]


def test_a_tool_with_side_effects_killed_while_it_runs_is_not_run_again(
    orc: Orchestrator, workers: Workers, stub: StubAnthropicServer, outbox: Path
) -> None:
    stub.script(
        [
            {"tool_use": [{"name": "send_email", "input": {"to": "ada", "body": "on its way"}}]},
            {"text": "Ada was told."},
            {"text": "Reviewed."},
        ]
    )
    started = Path(f"{outbox}.started")

    result = _run_with_a_kill(orc, workers, stub, lambda: bool(lines(started, "send_email ")))

    assert result.status is WorkflowStatus.FAILED
    assert result.error is not None and "ToolOutcomeUnknown" in result.error
    assert "send_email" in result.error
    assert len(lines(started, "send_email ")) == 1  # started once, never again
    assert lines(outbox, "email ") == []  # and killed before it sent anything
    assert len(result.steps) == 1  # the reviewer was never asked


def test_an_idempotent_tool_killed_while_it_runs_runs_again_with_the_same_key(
    orc: Orchestrator, workers: Workers, stub: StubAnthropicServer, outbox: Path
) -> None:
    stub.script(
        [
            {"tool_use": [{"name": "refund", "input": {"order": 7}}]},
            {"text": "Refunded."},
            {"text": "Reviewed."},
        ]
    )
    started = Path(f"{outbox}.started")

    result = _run_with_a_kill(orc, workers, stub, lambda: bool(lines(started, "refund ")))

    assert result.status is WorkflowStatus.SUCCEEDED, result.error
    starts = lines(started, "refund ")
    assert len(starts) == 2 and starts[0] == starts[1]  # run again, with the same key
    assert len(lines(outbox, "refund ")) == 1  # which the outside system deduplicated on
    [call] = result.steps[0].tool_calls
    assert (call.tool, call.runs, call.status) == ("refund", 2, "succeeded")
