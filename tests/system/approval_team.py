"""The team the approval system test runs in real worker processes: a writer's draft waits at
a gate for a person's approval before the publisher sees it. Settings come from AGENTYARD_*."""

from orchestration import Agent, Orchestrator, Workflow, approval

orc = Orchestrator("approvals")
for agent_id in ("writer", "publisher"):
    orc.register_agent(
        Agent(id=agent_id, model="offline:echo", system_prompt=f"You are the {agent_id}.")
    )
orc.register_workflow(Workflow("publish", ["writer", approval("publish"), "publisher"]))

app = orc.celery
