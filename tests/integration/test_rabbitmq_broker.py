"""The queues on RabbitMQ, seen from Python: priorities on the wire, x-max-priority on every
queue, and queue depths read for the metrics (a virtual host of the test's own)."""

from __future__ import annotations

import uuid

import pytest

from bus.envelope import AgentMessage, MessageType
from orchestration import Agent, Orchestrator, Settings, Workflow
from orchestration.maintenance import Maintenance

pytestmark = pytest.mark.integration


@pytest.fixture
def orc(server_settings: Settings, rabbitmq_url: str) -> Orchestrator:
    orc = Orchestrator(
        f"rabbit-{uuid.uuid4().hex[:8]}",  # the database is shared: the sweep sees this team's
        server_settings.model_copy(update={"broker_url": rabbitmq_url}),
    )
    orc.register_agent(Agent(id="writer", model="offline:echo"))
    orc.register_agent(Agent(id="reviewer", model="offline:echo"))
    orc.register_workflow(Workflow.sequence("w", ["writer", "reviewer"]))
    return orc


def test_a_submitted_run_waits_on_rabbitmq_and_the_metrics_count_it(orc: Orchestrator) -> None:
    orc.submit("w", "the telegraph", priority=7)
    orc.submit("w", "the semaphore", priority=2)

    registry = orc.metrics().registry
    depth = {
        queue: registry.get_sample_value("agentyard_queue_depth", {"queue": queue})
        for queue in ("agent.writer", "agent.reviewer", "coordinator")
    }
    # the reviewer's queue is declared by nobody yet: nothing waits in it
    assert depth == {"agent.writer": 2, "agent.reviewer": 0, "coordinator": 0}


def test_the_most_urgent_message_is_taken_first_from_a_rabbitmq_queue(orc: Orchestrator) -> None:
    for priority in (0, 9, 5):
        orc.bus.publish(
            AgentMessage(
                type=MessageType.NOTIFICATION,
                sender="writer",
                to="reviewer",
                priority=priority,
                payload={"p": priority},
            )
        )
    with orc.celery.connection_for_read() as connection:
        queue = orc.celery.amqp.queues["agent.reviewer"]
        assert queue.queue_arguments == {"x-max-priority": 9}
        taken = []
        with connection.SimpleQueue(queue) as simple:
            for _ in range(3):
                message = simple.get(timeout=5)
                taken.append(message.properties["priority"])
                message.ack()
    assert taken == [9, 5, 0]


def test_a_request_recorded_but_never_sent_to_rabbitmq_is_dispatched_again_by_the_sweep(
    orc: Orchestrator,
) -> None:
    # Given a run whose first request is on record but in no queue (its process was killed
    # between the commit and the publish): here, the queue is emptied
    run = orc.submit("w", "the telegraph")
    with orc.celery.connection_for_write() as connection:
        connection.default_channel.queue_purge("agent.writer")
    sweep = Maintenance(
        orc.bus, orc.settings, orc._broker_contents(), lost_after_s=0, team=orc.name
    )

    # When the sweep runs
    assert sweep.sweep()["lost_requests"] == 1

    # Then the attempt is given up on, and once the coordinator decides, attempt 2 waits
    step = run.result().steps[0]
    assert step.status == "attempt_failed" and "never sent" in (step.error or "")
    advance = orc.celery.amqp.queues["coordinator"]
    with orc.celery.connection_for_read() as connection, connection.SimpleQueue(advance) as queue:
        assert queue.qsize() == 1  # the advance the sweep sent to the coordinator
