"""Which Celery task and queue a recipient's messages go to. Names are fixed here, and only here."""

from __future__ import annotations

from typing import NamedTuple

from bus.envelope import APPROVERS, COORDINATOR

ADVANCE_TASK = "agentyard.coordinator.advance"
SWEEP_TASK = "agentyard.maintenance.sweep"
ACK_SWEEP_TASK = "agentyard.bus.ack_sweep"
COORDINATOR_QUEUE = "coordinator"


class Route(NamedTuple):
    task: str
    queue: str


def agent_queue(agent_id: str) -> str:
    return f"agent.{agent_id}"


def route_for(recipient: str) -> Route:
    if recipient == COORDINATOR:
        return Route(ADVANCE_TASK, COORDINATOR_QUEUE)
    if recipient == APPROVERS:  # people: on the audit trail, on no queue
        return Route("", "")
    return Route(agent_queue(recipient), agent_queue(recipient))
