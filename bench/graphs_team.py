"""The team `bench/graphs.py` measures: zero-latency agents in a fan-out, a loop and a sequence,
and plain Celery tasks for the baseline on the SAME Celery app.

Settings come from the environment (``AGENTYARD_*``). Worker processes are the real
``agentyard worker bench.graphs_team:orc --all-agents --coordinator``; the
``celeryd_after_setup`` hook adds the ``bench.graphs`` queue, so both workloads run on the very
same processes. With ``BENCH_DECIDE_CPU`` set, each worker adds the thread CPU time of every
coordinator decision to a Redis counter (``<prefix>bench:decide_cpu_us``), and counts them
(``<prefix>bench:decides``): the coordinator's own work, apart from the calls and the claims.
"""

from __future__ import annotations

import functools
import os
import time
from typing import Any

from celery import signals

from orchestration import Agent, Orchestrator, Workflow, fan_out, loop
from storage.redis_client import redis_for

FAN_OUT = "fan"  # a fan-out over the input's lines, then one step on the joined text
LOOP = "loop20"  # 20 iterations of an editor and a critic: 40 steps
SEQUENCE = "seq40"  # the same 40 steps, as a sequence
ITERATIONS = 20
NOOP_TASK = "bench.graphs.noop"
QUEUE = "bench.graphs"


def items(text: str) -> list[str]:
    """Every line of the input: one branch each."""
    return text.splitlines()


orc = Orchestrator("bench-graphs")
for agent_id in ("summarizer", "writer", "editor", "critic"):
    orc.register_agent(
        Agent(id=agent_id, model="offline:echo", system_prompt=f"You are the {agent_id}.")
    )
orc.register_workflow(Workflow(FAN_OUT, [fan_out("summarizer", over=items), "writer"]))
orc.register_workflow(
    Workflow(LOOP, [loop(["editor", "critic"], max_iterations=ITERATIONS, on_limit="best")])
)
orc.register_workflow(Workflow.sequence(SEQUENCE, ["editor", "critic"] * ITERATIONS))

app = orc.celery


@app.task(name=NOOP_TASK, queue=QUEUE, ignore_result=True, shared=False)  # type: ignore[untyped-decorator]
def noop(latch: str | None = None, of: int = 0, mark: str | None = None) -> None:
    """Does nothing, then: counts itself done in ``latch`` and, as the ``of``-th, sends the task
    that follows the group (the fan-in Celery's Redis chord does with its counter, without a
    result backend); or, as that task, appends its finish time to list ``mark``."""
    client = redis_for(orc.settings.redis_url)
    if latch is not None and client.incr(latch) == of:
        noop.apply_async(kwargs={"mark": f"{latch}:done"})
    if mark is not None:
        client.rpush(mark, repr(time.time()))


@signals.celeryd_after_setup.connect
def _consume_bench_queue(sender: Any = None, instance: Any = None, **_: Any) -> None:
    if instance is not None and instance.app is app:
        instance.app.amqp.queues.select_add(QUEUE)


if os.environ.get("BENCH_DECIDE_CPU"):
    from orchestration.coordinator import Coordinator

    _decide = Coordinator.decide
    _key = f"{orc.settings.redis_key_prefix}bench:"

    @functools.wraps(_decide)
    def _timed(self: Coordinator, *args: Any, **kwargs: Any) -> Any:
        started = time.thread_time()
        try:
            return _decide(self, *args, **kwargs)
        finally:
            spent_us = int((time.thread_time() - started) * 1e6)
            pipe = redis_for(orc.settings.redis_url).pipeline(transaction=False)
            pipe.incrby(f"{_key}decide_cpu_us", spent_us).incr(f"{_key}decides")
            pipe.execute()

    Coordinator.decide = _timed  # type: ignore[method-assign]
