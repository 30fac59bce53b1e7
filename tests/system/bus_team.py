"""The team the bus's system tests run in real worker processes. Each agent's bus handler notes
in Redis when it starts and finishes a message, so a test can see the order of processing, the
attempts and priorities, across processes. Settings come from AGENTYARD_*."""

from __future__ import annotations

import json
import time
from functools import cache

import redis

from bus.envelope import AgentMessage
from orchestration import Agent, Orchestrator, Workflow

orc = Orchestrator("bus")
# "tester" sends the tests' messages (only a registered agent may publish) and receives none.
AGENTS = ("sink", "listener-a", "listener-b", "listener-c", "forgetful", "slow", "tester")
for agent_id in AGENTS:
    orc.register_agent(Agent(id=agent_id, model="offline:echo"))

# Step requests and responses take the bus too: a one-step workflow on the sink.
orc.register_workflow(Workflow.sequence("relay", ["sink"]))

NOTES = "bus-test:notes"  # under the key prefix of the test


@cache
def _client() -> redis.Redis:
    return redis.Redis.from_url(orc.settings.redis_url or "")


def notes_key() -> str:
    return f"{orc.settings.redis_key_prefix}{NOTES}"


def _note(agent_id: str, event: str, message: AgentMessage) -> None:
    note = {
        "agent": agent_id,
        "event": event,
        "id": message.id,
        "attempt": message.attempt,
        "priority": message.priority,
        "label": message.payload.get("label"),
    }
    _client().rpush(notes_key(), json.dumps(note))


def _handler(agent_id: str):  # type: ignore[no-untyped-def]
    def handle(message: AgentMessage) -> None:
        _note(agent_id, "started", message)
        time.sleep(float(message.payload.get("sleep_s", 0)))
        _note(agent_id, "finished", message)

    return handle


for agent_id in ("sink", "listener-a", "listener-b", "listener-c", "slow"):
    orc.on_message(agent_id)(_handler(agent_id))
# Processes its messages and never acknowledges them: the sweeper publishes them again.
orc.on_message("forgetful", auto_ack=False)(_handler("forgetful"))

app = orc.celery
