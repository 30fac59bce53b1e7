"""Runs with retries, fallbacks and failures, for the tests of traces, graphs and queries.

The team: ``researcher`` answers; ``writer`` is rate-limited on every call, has one retry and
``editor`` as its fallback; ``critic`` is refused on every call and has no fallback. So
``research`` (researcher -> writer -> reviewer) succeeds after writer's two attempts and
editor's one, and ``doomed`` (researcher -> critic -> reviewer) fails at step 2 and never runs
step 3.
"""

from __future__ import annotations

import time
from datetime import datetime

from sqlmodel import Session

from orchestration import Agent, Orchestrator, Workflow
from orchestration.maintenance import Maintenance
from orchestration.results import WorkflowResult
from storage.models import StepRow, TraceRow, WorkflowRow, new_id
from tests.support import InlineBus, drain

ECHO = "offline:echo"


def trace_team_members() -> tuple[tuple[Agent, ...], tuple[Workflow, ...]]:
    agents = (
        Agent(id="researcher", model=ECHO, system_prompt="You are the researcher."),
        Agent(id="editor", model=ECHO, system_prompt="You are the editor."),  # before the writer
        Agent(
            id="writer",
            model="offline:echo?fail=rate_limited",  # asks for a 0.05 s wait
            system_prompt="You are the writer.",
            max_retries=1,
            fallback="editor",
        ),
        Agent(id="critic", model="offline:echo?fail=rejected", system_prompt="You criticise."),
        Agent(id="reviewer", model=ECHO, system_prompt="You are the reviewer."),
    )
    workflows = (
        Workflow.sequence("research", ["researcher", "writer", "reviewer"]),
        Workflow.sequence("doomed", ["researcher", "critic", "reviewer"]),
    )
    return agents, workflows


def run_to_the_end(
    orc: Orchestrator, bus: InlineBus, workflow: str, text: str, rounds: int = 100
) -> WorkflowResult:
    """Submit and drive a run until it finishes: retries come due after their wait (the sweep
    dispatches them), so each round waits a little and sweeps. Fails if it never finishes."""
    run = orc.submit(workflow, text)
    sweep = Maintenance(orc.bus, orc.settings, team=orc.name)  # a shared database holds others'
    for _ in range(rounds):
        drain(orc, bus)
        result = run.result()
        if result.finished:
            return result
        time.sleep(0.06)
        sweep.sweep()
    raise AssertionError(f"run {run.id} did not finish: {run.result().status}")


def record_run(
    session: Session,
    *,
    team: str = "unit",
    name: str = "research",
    created_at: datetime,
    finished_at: datetime | None = None,
    calls: tuple[tuple[str, int, str], ...] = (),
) -> str:
    """A run on record as the workers would leave it, with ``calls`` as (agent, cost in
    micro-dollars, outcome), all in one step. Returns its id."""
    run_id = new_id()
    session.add(
        WorkflowRow(
            id=run_id,
            team=team,
            name=name,
            status="running" if finished_at is None else "succeeded",
            input="a topic",
            cost_micro=sum(cost for _, cost, _ in calls),
            created_at=created_at,
            updated_at=finished_at or created_at,
            finished_at=finished_at,
        )
    )
    session.flush()  # the step's foreign key needs the run's row first
    step_id = new_id()
    session.add(
        StepRow(
            id=step_id,
            workflow_id=run_id,
            position=0,
            agent_id=calls[0][0] if calls else "writer",
            status="running" if finished_at is None else "succeeded",
            attempt=len(calls),
        )
    )
    for attempt, (agent, cost, outcome) in enumerate(calls, start=1):
        session.add(
            TraceRow(
                workflow_id=run_id,
                step_id=step_id,
                agent_id=agent,
                model=ECHO,
                attempt=attempt,
                outcome=outcome,
                cost_micro=cost,
                started_at=created_at,
                finished_at=created_at,
            )
        )
    return run_id
