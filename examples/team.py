"""The example team: researcher -> writer -> reviewer.

Runs on the offline model by default, so it works with no API key and no network. Set
AGENTYARD_EXAMPLE_MODEL (for example claude-haiku-4-5) to run it on a real model.
"""

import os

from orchestration import Agent, Orchestrator, Workflow

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
            "You are a demanding editor. Check the article against the research; list fixes."
        ),
    )
)
orc.register_workflow(
    Workflow.sequence("research", ["researcher", "writer", "reviewer"], budget_usd=1.0)
)

app = orc.celery  # so that `celery -A examples.team worker` works too
