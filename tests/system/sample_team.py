"""The team the system tests run in real worker processes; settings come from AGENTYARD_*, and
the knobs below from SAMPLE_TEAM_*."""

import os

from orchestration import Agent, Orchestrator, Workflow


def _knob(name: str) -> str | None:
    return os.environ.get(f"SAMPLE_TEAM_{name}") or None


MODEL = _knob("MODEL") or "offline:echo"
WRITER_MODEL = _knob("WRITER_MODEL") or MODEL
WRITER_CAP_USD = _knob("WRITER_CAP_USD")  # the writer's daily spend cap
AGENT_CAP_USD = _knob("AGENT_CAP_USD")  # every other agent's daily spend cap
WRITER_FALLBACK = _knob("WRITER_FALLBACK")  # another agent's id
RUN_BUDGET_USD = _knob("RUN_BUDGET_USD")  # the workflow's cap per run


def _cap(agent_id: str) -> float | None:
    cap = WRITER_CAP_USD if agent_id == "writer" else None
    cap = cap or AGENT_CAP_USD
    return float(cap) if cap else None


# A test whose figures are per team (the cost ledger) names a team of its own.
orc = Orchestrator(_knob("NAME") or "sample")
# The writer last: its fallback, when it has one, is registered before it.
for agent_id in ("researcher", "reviewer", "writer"):
    orc.register_agent(
        Agent(
            id=agent_id,
            model=WRITER_MODEL if agent_id == "writer" else MODEL,
            system_prompt=f"You are the {agent_id}.",
            max_tokens=int(_knob("MAX_TOKENS") or 1024),
            max_retries=int(_knob("MAX_RETRIES") or 3),
            timeout_s=float(_knob("TIMEOUT_S") or 60),
            cost_limit_usd=_cap(agent_id),
            breaker_threshold=int(_knob("BREAKER_THRESHOLD") or 5),
            breaker_reset_s=float(_knob("BREAKER_RESET_S") or 30),
            fallback=WRITER_FALLBACK if agent_id == "writer" else None,
        )
    )
orc.register_workflow(
    Workflow.sequence(
        "research",
        ["researcher", "writer", "reviewer"],
        budget_usd=float(RUN_BUDGET_USD) if RUN_BUDGET_USD else None,
    )
)

app = orc.celery
