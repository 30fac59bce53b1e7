"""What agentyard's tasks show of themselves to Flower and ``celery inspect``: ids only, also for
a task a worker holds but has not started, and for a task that failed."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from celery import Celery
from structlog.testing import capture_logs

from bus.envelope import AgentMessage, MessageType
from bus.publisher import Bus
from orchestration import Agent, Orchestrator, Settings
from storage.errors import TaskFailed
from workers.task_privacy import IdsOnlyRequest
from workers.tasks import register_agent_task

SECRET = "PROMPT: the launch codes are 0000 (sk-ant-not-for-flower)"


def _request(message_id: str) -> AgentMessage:
    return AgentMessage(
        type=MessageType.REQUEST,
        sender="coordinator",
        to=("notetaker",),
        payload={"step_id": "step-1", "attempt": 1, "note": SECRET},
        workflow_id="run-1",
        step_id="step-1",
        id=message_id,
    )


@pytest.fixture
def orc(unit_settings: Settings) -> Orchestrator:
    orc = Orchestrator("privacy", unit_settings)
    orc.register_agent(Agent(id="notetaker", model="offline:echo"))
    return orc


def _published(orc: Orchestrator, message: AgentMessage) -> Any:
    """``message`` sent by the real publisher, as the worker's broker hands it over."""
    app = orc.celery
    Bus(app, orc.database_url).send_copy(message, "notetaker")
    with app.connection() as connection:
        queue = app.amqp.queues["agent.notetaker"](connection.default_channel)
        while (got := queue.get(no_ack=True)) is not None:
            if got.headers["id"] == message.id:
                return got
    raise AssertionError(f"message {message.id} never reached agent.notetaker")


def test_a_worker_describes_a_task_it_holds_by_ids_not_by_its_envelope(orc: Orchestrator) -> None:
    # Given a request as the publisher puts it on the wire, envelope and payload included
    wire = _published(orc, _request("msg-reserved"))
    task = orc.celery.tasks["agent.notetaker"]
    assert SECRET in wire.body.decode()

    # When the worker answers `inspect reserved` / `scheduled` about it (Flower's worker page)
    info = task.Request(wire, app=orc.celery, task=task).info()

    # Then it shows the ids the publisher chose, and nothing of the envelope
    assert task.Request is IdsOnlyRequest
    assert info["id"] == "msg-reserved" and info["name"] == "agent.notetaker"
    assert info["args"] == "()"
    assert info["kwargs"] == "{'message': 'msg-reserved', 'workflow': 'run-1', 'step': 'step-1'}"
    assert SECRET not in repr(info)


def test_a_failed_task_tells_flower_its_name_id_and_error_type_and_the_log_the_rest(
    unit_settings: Settings,
) -> None:
    # Given an agent whose step fails with an error that quotes the prompt (as a database error
    # quotes its statement's parameters)
    app = Celery("privacy-failure", broker="memory://", set_as_current=False)

    def handler(agent_id: str, message: AgentMessage, headers: Mapping[str, Any]) -> None:
        raise RuntimeError(f"INSERT failed [parameters: {message.payload['note']!r}]")

    register_agent_task(app, "notetaker", handler)
    envelope = _request("msg-failed").encode()

    # When a worker runs the task
    with capture_logs() as logs:
        outcome = app.tasks["agent.notetaker"].apply(kwargs={"envelope": envelope}, task_id="t-9")

    # Then what the task-failed event carries (exception and traceback) names ids only
    assert outcome.failed()
    assert isinstance(outcome.result, TaskFailed)
    assert str(outcome.result) == (
        "task agent.notetaker [t-9] failed with RuntimeError; the worker's log has the details "
        "(event task.failed, task_id t-9)"
    )
    assert SECRET not in outcome.traceback and "RuntimeError(" not in outcome.traceback
    # And the worker's log keeps the original error for whoever runs the workers
    [failed] = [entry for entry in logs if entry["event"] == "task.failed"]
    assert failed["task"] == "agent.notetaker" and failed["task_id"] == "t-9"
    assert failed["error"] == "RuntimeError" and failed["exc_info"] is True


def test_every_task_of_a_team_describes_itself_by_ids(orc: Orchestrator) -> None:
    for name, task in orc.celery.tasks.items():
        if not name.startswith("celery."):
            assert task.Request is IdsOnlyRequest, name
