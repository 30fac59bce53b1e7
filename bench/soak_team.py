"""The team `bench/soak.py` runs for half an hour: mixed workflows on the offline model (answers
after ``SOAK_LATENCY_S``), covering the shapes a deployment runs: a sequence, a loop that stops
by convergence, a fan-out with its join, a tool loop, and an approval gate that nobody decides
(its timeout approves it). Settings come from AGENTYARD_*."""

from __future__ import annotations

import os

from orchestration import Agent, Orchestrator, Workflow, approval, fan_out, loop, tool

LATENCY_S = os.environ.get("SOAK_LATENCY_S", "0.2")
MODEL = f"offline:echo?latency={LATENCY_S}"


@tool
def look_up(topic: str) -> str:
    """Look a topic up in the archive."""
    return f"the archive's entry on {topic}: first mentioned in 1837"


def paragraphs(text: str) -> list[str]:
    """Up to three items to fan out over: the first sentences of the text."""
    return [s.strip() for s in text.split(".") if s.strip()][:3] or [text]


def never(text: str) -> bool:
    """A loop's verdict that never lets it stop by itself: convergence does."""
    return False


orc = Orchestrator("soak")
for agent_id in ("researcher", "writer", "reviewer", "summarizer"):
    orc.register_agent(
        Agent(id=agent_id, model=MODEL, system_prompt=f"You are the {agent_id}.", max_tokens=256)
    )
orc.register_agent(
    Agent(
        id="archivist",
        model=MODEL,
        system_prompt="You answer from the archive.",
        tools=[look_up],
        max_tokens=256,
    )
)
orc.register_workflow(Workflow.sequence("sequence", ["researcher", "writer", "reviewer"]))
orc.register_workflow(
    Workflow(
        "loop",
        [
            "researcher",
            loop(
                ["writer", "reviewer"],
                max_iterations=3,
                until=never,
                converge_at=0.9,
                on_limit="best",
            ),
        ],
    )
)
orc.register_workflow(Workflow("fan_out", ["researcher", fan_out("summarizer", over=paragraphs)]))
orc.register_workflow(Workflow("tools", ["archivist", "writer"]))
orc.register_workflow(
    Workflow(
        "gated", ["writer", approval("publish", timeout_s=2, on_timeout="approve"), "reviewer"]
    )
)
WORKFLOWS = ("sequence", "loop", "fan_out", "tools", "gated")

app = orc.celery
