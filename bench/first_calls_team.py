"""The team `bench/first_calls.py` measures: one agent on a Claude model, called through the real
SDK (pointed at the stub server), in a one-step workflow. Settings come from the environment
(``AGENTYARD_*``); the agent's deadline from ``BENCH_TIMEOUT_S``."""

from __future__ import annotations

import os

from orchestration import Agent, Orchestrator, Workflow

AGENT = "responder"
WORKFLOW = "answer"

orc = Orchestrator("firstcalls")  # settings from the environment (AGENTYARD_*)
orc.register_agent(
    Agent(
        id=AGENT,
        model="claude-haiku-4-5",
        system_prompt="You answer briefly.",
        max_tokens=64,
        max_retries=3,
        timeout_s=float(os.environ.get("BENCH_TIMEOUT_S", "60")),
    )
)
orc.register_workflow(Workflow.sequence(WORKFLOW, [AGENT]))

app = orc.celery
