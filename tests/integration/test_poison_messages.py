"""Poison messages on a real Redis broker and PostgreSQL: each one is dead-lettered with its
reason, and the worker carries on."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from celery.contrib.testing.worker import start_worker
from kombu import Producer
from sqlmodel import select

from orchestration import Agent, Orchestrator, Settings, Workflow, WorkflowStatus
from storage.db import session_scope
from storage.models import DeadLetterRow

pytestmark = pytest.mark.integration

QUEUE = "agent.researcher"


@pytest.fixture
def orc(server_settings: Settings) -> Iterator[Orchestrator]:
    orc = Orchestrator("poison", server_settings)
    orc.register_agent(Agent(id="researcher", model="offline:echo"))
    orc.register_workflow(Workflow.sequence("solo", ["researcher"]))
    orc.ensure_ready()
    with start_worker(
        orc.celery,
        pool="threads",
        concurrency=2,
        perform_ping_check=False,
        queues=["coordinator", QUEUE],
        shutdown_timeout=10,
    ):
        yield orc
    orc.close()


def _publish(orc: Orchestrator, body: bytes, content_type: str, task: str) -> None:
    queue = orc.celery.amqp.queues[QUEUE]
    with orc.celery.connection_for_write() as connection:
        Producer(connection).publish(
            body,
            exchange=queue.exchange,
            routing_key=queue.routing_key,
            declare=[queue],
            content_type=content_type,
            content_encoding="utf-8",
            headers={"task": task, "id": f"poison-{task}-{content_type}", "lang": "py"},
        )


def _dead_letters(orc: Orchestrator) -> list[DeadLetterRow]:
    with session_scope(orc.database_url) as session:
        return list(session.exec(select(DeadLetterRow)).all())


def test_every_kind_of_poison_message_is_dead_lettered_and_the_worker_carries_on(
    orc: Orchestrator,
) -> None:
    _publish(orc, b"{this is not json", "application/json", QUEUE)
    _publish(orc, b"[[], {}, {}]", "application/json", "agent.nobody")
    _publish(orc, b"\x80\x04K\x01.", "application/x-python-serialize", QUEUE)
    orc.celery.send_task(QUEUE, kwargs={"envelope": {"not": "an agentyard message"}}, queue=QUEUE)

    deadline = time.monotonic() + 30
    while len(_dead_letters(orc)) < 4 and time.monotonic() < deadline:
        time.sleep(0.2)
    letters = _dead_letters(orc)
    reasons = sorted(letter.reason for letter in letters)
    assert len(letters) == 4, reasons
    assert any(r.startswith("the body cannot be decoded") for r in reasons), reasons
    assert any("untrusted content of type pickle" in r for r in reasons), reasons
    assert any("no worker knows task 'agent.nobody'" in r for r in reasons), reasons
    assert any("not an agentyard message" in r for r in reasons), reasons

    result = orc.submit("solo", "the telegraph").wait(timeout=30)  # the worker is still up
    assert result.status is WorkflowStatus.SUCCEEDED
