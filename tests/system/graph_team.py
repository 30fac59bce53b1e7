"""The team the workflow-graph system tests run in real worker processes; settings come from
AGENTYARD_*, and the knobs below from GRAPH_TEAM_*."""

import os

from orchestration import Agent, Orchestrator, RunView, Verdict, Workflow, fan_out, loop, step


def _knob(name: str, default: str) -> str:
    return os.environ.get(f"GRAPH_TEAM_{name}") or default


def items(text: str) -> list[str]:
    """Every line of the input that is not blank: one branch each."""
    return [line.strip() for line in text.splitlines() if line.strip()]


def answered_again(output: str, run: RunView) -> Verdict:
    """Accepts only an answer to a re-ask (the offline model names its task in its answer)."""
    return Verdict("refused" in output, "answer again")


MODEL = _knob("MODEL", "offline:echo")
SUMMARIZER_MODEL = _knob("SUMMARIZER_MODEL", MODEL)
MAX_PARALLEL = int(_knob("MAX_PARALLEL", "4"))
RUN_BUDGET_USD = _knob("RUN_BUDGET_USD", "")

orc = Orchestrator(_knob("NAME", "graphs"))
for agent_id in ("summarizer", "writer", "editor", "critic"):
    orc.register_agent(
        Agent(
            id=agent_id,
            model=SUMMARIZER_MODEL if agent_id == "summarizer" else MODEL,
            system_prompt=f"You are the {agent_id}.",
            max_tokens=int(_knob("MAX_TOKENS", "1024")),
            timeout_s=float(_knob("TIMEOUT_S", "60")),
        )
    )
# A fan-out of the input's lines, a writer on their joined summaries, three rounds of editing.
orc.register_workflow(
    Workflow(
        "digest",
        [
            fan_out("summarizer", over=items, max_parallel=MAX_PARALLEL),
            "writer",
            loop(["editor", "critic"], max_iterations=3, on_limit="best"),
        ],
    )
)
# A fan-out as wide as the input, under the run's budget.
orc.register_workflow(
    Workflow(
        "wide",
        [fan_out("summarizer", over=items)],
        budget_usd=float(RUN_BUDGET_USD) if RUN_BUDGET_USD else None,
    )
)

# A writer whose first answer a check refuses: asked again, it passes.
orc.register_workflow(Workflow("checked", [step("writer", checks=[answered_again]), "editor"]))

app = orc.celery
