"""The team the approval system test runs in real worker processes: a writer's draft waits at
a gate for a person's approval before the publisher sees it (in the hasty_* workflows, for 2 s,
then the gate's on_timeout applies). Settings come from AGENTYARD_*."""

from orchestration import Agent, Orchestrator, Workflow, approval

orc = Orchestrator("approvals")
for agent_id in ("writer", "publisher"):
    orc.register_agent(
        Agent(id=agent_id, model="offline:echo", system_prompt=f"You are the {agent_id}.")
    )
orc.register_workflow(Workflow("publish", ["writer", approval("publish"), "publisher"]))
for on_timeout in ("reject", "approve", "fail"):  # nobody deciding within 2 s applies it
    orc.register_workflow(
        Workflow(
            f"hasty_{on_timeout}",
            ["writer", approval("publish", timeout_s=2, on_timeout=on_timeout), "publisher"],
        )
    )

app = orc.celery
