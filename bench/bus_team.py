"""The team `bench/bus.py` measures: one agent, ``sink``, whose bus handler counts what it
receives, and a plain Celery task that counts the same way on the SAME Celery app, for the
baseline.

Settings come from the environment (``AGENTYARD_*``), as for any team. Worker processes are the
real ``agentyard worker bench.bus_team:orc --agents sink``; the ``celeryd_after_setup`` hook below
adds the baseline's queue to what they consume, so both sides run on the very same processes,
pools and broker connections.

Both consumers do the same work once they have the message: one ``INCR`` of the batch's counter
(under the run's Redis key prefix). The message that brings the counter to the batch's total
also writes the time, from the worker's clock, so the bench's polling does not blur the figure.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from celery import signals

from bus.envelope import AgentMessage
from orchestration import Agent, Orchestrator
from storage.redis_client import redis_for

SINK = "sink"
BASELINE_TASK = "bench.bus_noop"
BASELINE_QUEUE = "bench.bus_noop"

orc = Orchestrator("bench-bus")  # settings from the environment (AGENTYARD_*)
orc.register_agent(
    Agent(id=SINK, model="offline:echo", system_prompt="You receive bench messages.")
)
# The sender of the bench's messages: only a registered agent may publish.
orc.register_agent(Agent(id="bench", model="offline:echo", system_prompt="You send them."))

app = orc.celery  # `celery -A bench.bus_team` works too


def counter_key(key_prefix: str, batch: str) -> str:
    """The Redis key counting the messages of ``batch`` consumed so far."""
    return f"{key_prefix}bench:bus:{batch}:consumed"


def finished_key(key_prefix: str, batch: str) -> str:
    """The Redis key holding the time (epoch seconds) the last message of ``batch`` was counted."""
    return f"{key_prefix}bench:bus:{batch}:finished_at"


def count(payload: Mapping[str, Any]) -> None:
    """One ``INCR``; the message that completes the batch also records the time."""
    client = redis_for(orc.settings.redis_url)
    prefix = orc.settings.redis_key_prefix
    if client.incr(counter_key(prefix, payload["batch"])) == payload["total"]:
        client.set(finished_key(prefix, payload["batch"]), repr(time.time()))


@orc.on_message(SINK)
def sink(message: AgentMessage) -> None:
    count(message.payload)


@app.task(name=BASELINE_TASK, queue=BASELINE_QUEUE, ignore_result=True, shared=False)
def bus_noop(envelope: dict[str, Any]) -> None:
    """The baseline's consumer: the same wire message as the bus's, the same ``INCR``."""
    count(envelope["payload"])


@signals.celeryd_after_setup.connect
def _consume_baseline_queue(sender: Any = None, instance: Any = None, **_: Any) -> None:
    # Celery's documented way to add a queue after -Q was applied; only for this team's app.
    if instance is not None and instance.app is app:
        instance.app.amqp.queues.select_add(BASELINE_QUEUE)
