"""The example team: a researcher, then a loop of the writer's draft and the reviewer's verdict,
until the reviewer approves or the drafts stop changing.

Runs on the offline model by default, so it works with no API key and no network. Set
AGENTYARD_EXAMPLE_MODEL (for example claude-haiku-4-5) to run it on a real model.
"""

import os

from orchestration import Agent, Orchestrator, Workflow, loop

MODEL = os.environ.get("AGENTYARD_EXAMPLE_MODEL", "offline:slow?latency=0.3")

orc = Orchestrator("team")  # settings from the environment (AGENTYARD_*)

orc.register_agent(
    Agent(
        id="researcher",
        model=MODEL,
        system_prompt=(
            "You are a meticulous researcher. List the key facts about the topic, with dates."
        ),
        max_retries=3,
        timeout_s=60,
        cost_limit_usd=5.0,
    )
)
orc.register_agent(
    Agent(
        id="writer",
        model=MODEL,
        system_prompt="You are a clear technical writer. Turn the research into a short article.",
    )
)
orc.register_agent(
    Agent(
        id="reviewer",
        model=MODEL,
        system_prompt=(
            "You are a demanding editor. Check the article against the research: answer "
            "APPROVED if it needs no change, else list the fixes."
        ),
    )
)


def approved(verdict: str) -> bool:
    """The reviewer's verdict lets the article go (module level: every worker imports it)."""
    return verdict.strip().upper().startswith("APPROVED")


orc.register_workflow(
    Workflow(
        "research",
        [
            "researcher",
            # The writer drafts, the reviewer's verdict goes back to it with the draft, at most
            # three times; a draft as good as the last one ends it too.
            loop(
                ["writer", "reviewer"],
                max_iterations=3,
                until=approved,
                converge_at=0.9,
                on_limit="best",
            ),
        ],
        budget_usd=1.0,
    )
)

app = orc.celery  # so that `celery -A examples.team worker` works too
