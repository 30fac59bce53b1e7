"""The team the system tests run in real worker processes; settings come from AGENTYARD_*."""

import os

from orchestration import Agent, Orchestrator, Workflow

MODEL = os.environ.get("SAMPLE_TEAM_MODEL", "offline:echo")
WRITER_CAP_USD = os.environ.get("SAMPLE_TEAM_WRITER_CAP_USD")  # the writer's daily spend cap
WRITER_MODEL = os.environ.get("SAMPLE_TEAM_WRITER_MODEL", MODEL)
WRITER_FALLBACK = os.environ.get("SAMPLE_TEAM_WRITER_FALLBACK")  # another agent's id

# A test whose figures are per team (the cost ledger) names a team of its own.
orc = Orchestrator(os.environ.get("SAMPLE_TEAM_NAME", "sample"))
for agent_id in ("researcher", "writer", "reviewer"):
    orc.register_agent(
        Agent(
            id=agent_id,
            model=WRITER_MODEL if agent_id == "writer" else MODEL,
            system_prompt=f"You are the {agent_id}.",
            timeout_s=float(os.environ.get("SAMPLE_TEAM_TIMEOUT_S", "60")),
            cost_limit_usd=float(WRITER_CAP_USD)
            if WRITER_CAP_USD and agent_id == "writer"
            else None,
            breaker_threshold=int(os.environ.get("SAMPLE_TEAM_BREAKER_THRESHOLD", "5")),
            breaker_reset_s=float(os.environ.get("SAMPLE_TEAM_BREAKER_RESET_S", "30")),
            fallback=WRITER_FALLBACK if agent_id == "writer" else None,
        )
    )
orc.register_workflow(Workflow.sequence("research", ["researcher", "writer", "reviewer"]))

app = orc.celery
