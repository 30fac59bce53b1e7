"""The team `bench/overhead.py` measures: five zero-latency agents in a five-step sequence, and a
plain Celery no-op task on the SAME Celery app, for the baseline; with ``--floor``, a third task
that does a step's storage work without agentyard's logic (``bench/durable_floor.py``).

Settings come from the environment (``AGENTYARD_*``), as for any team. Worker processes are the
real ``agentyard worker bench.overhead_team:orc --all-agents --coordinator``; the
``celeryd_after_setup`` hook below adds the ``bench.noop`` queue (and with ``BENCH_FLOOR`` set, the
``bench.floor`` one) to what they consume, so every workload runs on the very same processes,
pools and broker connections.
"""

from __future__ import annotations

import functools
import os
import time
from typing import Any

from celery import signals

from bench import durable_floor
from orchestration import Agent, Orchestrator, Workflow
from storage.redis_client import redis_for

AGENTS = ("s1", "s2", "s3", "s4", "s5")
WORKFLOW = "five"
NOOP_TASK = "bench.noop"
NOOP_QUEUE = "bench.noop"
FLOOR_TASK = "bench.floor"
FLOOR_QUEUE = "bench.floor"

orc = Orchestrator("bench")  # settings from the environment (AGENTYARD_*)

for agent_id in AGENTS:
    orc.register_agent(
        Agent(
            id=agent_id,
            model="offline:echo",
            system_prompt=f"You are bench agent {agent_id}. Answer briefly.",
        )
    )
orc.register_workflow(Workflow.sequence(WORKFLOW, list(AGENTS)))

app = orc.celery  # `celery -A bench.overhead_team` works too


@app.task(name=NOOP_TASK, queue=NOOP_QUEUE, ignore_result=True, shared=False)  # type: ignore[untyped-decorator]
def noop(mark: str | None = None) -> None:
    """Does nothing; the last task of a baseline chain appends its finish time to list ``mark``."""
    if mark:
        redis_for(orc.settings.redis_url).rpush(mark, repr(time.time()))


@functools.cache
def _floor_admit() -> Any:
    """The floor's Redis script, registered once per process."""
    return durable_floor.admit_script(redis_for(orc.settings.redis_url))


@app.task(name=FLOOR_TASK, queue=FLOOR_QUEUE, ignore_result=True, shared=False)  # type: ignore[untyped-decorator]
def floor_step(workflow_id: str, position: int, mark: str | None = None) -> None:
    """A step's storage work without agentyard's logic (``bench.durable_floor``); the last task
    of a chain appends its finish time to list ``mark``."""
    prefix = orc.settings.redis_key_prefix
    durable_floor.step(orc.database_url, _floor_admit(), prefix, workflow_id, position)
    if mark:
        redis_for(orc.settings.redis_url).rpush(mark, repr(time.time()))


@signals.celeryd_after_setup.connect
def _consume_noop_queue(sender: Any = None, instance: Any = None, **_: Any) -> None:
    # Celery's documented way to add a queue after -Q was applied; only for this team's app.
    if instance is not None and instance.app is app:
        instance.app.amqp.queues.select_add(NOOP_QUEUE)
        if os.environ.get("BENCH_FLOOR"):  # only then: each queue served adds to every wait
            instance.app.amqp.queues.select_add(FLOOR_QUEUE)


if os.environ.get("BENCH_INSTRUMENT"):
    from bench import instrument

    instrument.install(orc)
