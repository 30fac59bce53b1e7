"""Celery task shells: decode the envelope, hand it to agentyard's logic, never lose it.

Tasks are registered with ``shared=False``: a shared task would be copied into every other
Celery app of the process (two Orchestrators would run each other's handlers).

The logic (the step runner and the bus's inbox, the coordinator, the sweeps) is handed in by the
Orchestrator, so this package knows Celery and nothing of the policies. A message that is not an
agentyard message is dead-lettered with the reason (``workers.poison``), not retried forever.
What a task shows of itself to Flower and ``celery inspect`` is ids only (``workers.task_privacy``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import structlog
from celery import Celery, Task

from bus.envelope import AgentMessage
from bus.routing import ADVANCE_TASK, COORDINATOR_QUEUE, agent_queue
from storage.errors import InvalidRequest
from workers.poison import sink_for
from workers.task_privacy import IdsOnlyRequest, ids_only_on_failure

log = structlog.get_logger(__name__)

Headers = Mapping[str, Any]
Handler = Callable[[AgentMessage, Headers], None]  # (the message, the headers it came with)
AgentHandler = Callable[[str, AgentMessage, Headers], object]  # and the agent it was sent to


def _decode(app: Celery, task_name: str, envelope: Any) -> AgentMessage | None:
    try:
        return AgentMessage.decode(envelope)
    except InvalidRequest as exc:
        sink = sink_for(app)
        if sink is None:
            log.error("task.bad_message", task=task_name, error=str(exc))
        else:
            sink.record(task=task_name, queue=None, reason=str(exc), body=repr(envelope))
        return None


def _headers(task: Task) -> Headers:
    """The message's own headers (its trace context): Celery keeps them apart from its own."""
    return task.request.headers or {}


def register_agent_task(app: Celery, agent_id: str, handler: AgentHandler) -> None:
    name = agent_queue(agent_id)

    @app.task(
        name=name, queue=name, ignore_result=True, shared=False, bind=True, Request=IdsOnlyRequest
    )
    def agent_message(task: Task, envelope: dict[str, Any]) -> None:
        with ids_only_on_failure(task):
            message = _decode(app, name, envelope)
            if message is not None:
                handler(agent_id, message, _headers(task))


def register_coordinator_task(app: Celery, handler: Handler) -> None:
    @app.task(
        name=ADVANCE_TASK,
        queue=COORDINATOR_QUEUE,
        ignore_result=True,
        shared=False,
        bind=True,
        Request=IdsOnlyRequest,
    )
    def advance(task: Task, envelope: dict[str, Any]) -> None:
        with ids_only_on_failure(task):
            message = _decode(app, ADVANCE_TASK, envelope)
            if message is not None:
                handler(message, _headers(task))


def register_periodic_task(
    app: Celery, name: str, handler: Callable[[], object], every_s: float
) -> None:
    """A task beat sends every ``every_s`` seconds to the coordinator queue."""

    @app.task(
        name=name,
        queue=COORDINATOR_QUEUE,
        ignore_result=True,
        shared=False,
        acks_late=False,
        bind=True,
        Request=IdsOnlyRequest,
    )
    def periodic(task: Task) -> None:
        with ids_only_on_failure(task):
            handler()

    # Short expiry: a run that waited longer than a period is superseded by the next one.
    app.conf.beat_schedule = {
        **(app.conf.beat_schedule or {}),
        name: {
            "task": name,
            "schedule": every_s,
            "options": {"queue": COORDINATOR_QUEUE, "expires": every_s * 2},
        },
    }
