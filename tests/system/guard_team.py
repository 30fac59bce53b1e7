"""The team the guard system tests run in real worker processes, every call through the real SDK
to the stub server (``AGENTYARD_ANTHROPIC_BASE_URL``); knobs from GUARD_TEAM_*."""

import os

from pydantic import BaseModel

from orchestration import Agent, Orchestrator, RunView, Verdict, Workflow, loop, step, verify


def _knob(name: str, default: str) -> str:
    return os.environ.get(f"GUARD_TEAM_{name}") or default


MODEL = "claude-haiku-4-5"
WRITER_CONTEXT_TOKENS = int(_knob("WRITER_CONTEXT_TOKENS", "5000"))


class Outline(BaseModel):
    title: str
    points: list[str]


def cites_sources(output: str, run: RunView) -> Verdict:
    """An answer must end with the sources it drew on."""
    return Verdict("Sources:" in output, "name your sources on a last line, 'Sources: ...'")


orc = Orchestrator(_knob("NAME", "guards"))
for agent_id in ("researcher", "planner", "critic", "author", "fact_checker", "reader"):
    orc.register_agent(
        Agent(id=agent_id, model=MODEL, system_prompt=f"You are the {agent_id}.", max_tokens=2048)
    )
orc.register_agent(
    Agent(
        id="writer",
        model=MODEL,
        system_prompt="You are the writer.",
        max_tokens=2048,
        context_tokens=WRITER_CONTEXT_TOKENS,
    )
)
orc.register_agent(
    Agent(id="summarizer", model=MODEL, system_prompt="You summarize.", max_tokens=200)
)
orc.register_agent(
    Agent(id="drafter", model=MODEL, system_prompt="You outline.", output_schema=Outline)
)

# Twenty rounds of long drafts and critiques after two long steps: the writer's input must fit
# its budget every time, the earlier steps left to one summary.
orc.register_workflow(
    Workflow(
        "long_loop",
        ["researcher", "planner", loop(["writer", "critic"], max_iterations=20, on_limit="best")],
        summarizer="summarizer",
    )
)
# A check that re-asks, then a verifier that judges against the facts the run is given.
orc.register_workflow(
    Workflow("checked", [step("author", checks=[cites_sources]), verify("fact_checker")])
)
orc.register_workflow(Workflow("outlined", ["drafter"]))
# What an injected request may not do: reach any agent.
orc.register_workflow(Workflow("guarded", ["researcher", "reader"], on_injection="quarantine"))

app = orc.celery
