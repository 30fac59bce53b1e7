"""The example team: a researcher (who looks things up with a tool), then a loop of the writer's
draft and the reviewer's verdict, until the reviewer approves or the drafts stop changing.

Runs on the offline model by default, so it works with no API key and no network. Set
AGENTYARD_EXAMPLE_MODEL (for example claude-haiku-4-5) to run it on a real model.
"""

import os
from typing import Annotated

from pydantic import Field

from orchestration import Agent, Orchestrator, Workflow, loop, tool

MODEL = os.environ.get("AGENTYARD_EXAMPLE_MODEL", "offline:slow?latency=0.3")

orc = Orchestrator("team")  # settings from the environment (AGENTYARD_*)

# A small library the researcher may search: a stand-in for a search API or a database.
LIBRARY = {
    "telegraph": "1837: Cooke and Wheatstone patent the electric telegraph in Britain.",
    "morse": "1844: Morse sends 'What hath God wrought' from Washington to Baltimore.",
    "cable": "1866: the first lasting transatlantic telegraph cable is laid.",
}


@tool  # no side effects: after a crash it may simply run again
def search_library(
    query: Annotated[str, Field(description="Words to look for, e.g. 'telegraph cable'")],
) -> list[str]:
    """Search the library for facts with dates; returns the entries whose subject the query
    names (all of them when it names none)."""
    words = query.lower().split()
    found = [entry for subject, entry in LIBRARY.items() if subject in words]
    return found or list(LIBRARY.values())


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
        tools=[search_library],
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
