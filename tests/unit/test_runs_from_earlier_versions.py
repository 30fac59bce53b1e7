"""Runs started by an earlier version finish under this one: a run from before graphs (no graph
on its row, every step made at submit, none naming a node), and one from before steps were made
when ready (a graph, every step made at submit)."""

from __future__ import annotations

from sqlalchemy import insert, update
from sqlmodel import col, select

from orchestration import Agent, Workflow, WorkflowStatus
from orchestration.coordinator import Coordinator
from storage.db import session_scope
from storage.models import StepRow, WorkflowRow, new_id
from tests.conftest import TeamFactory
from tests.support import drain

AGENTS = ("researcher", "writer", "reviewer")


def _made_at_submit(inline_team: TeamFactory, *, with_graph: bool):  # type: ignore[no-untyped-def]
    """A three-step run as an earlier version left it: its first step dispatched, the other two
    made at submit and pending."""
    orc, bus = inline_team(
        *(Agent(id=a, model="offline:echo") for a in AGENTS),
        workflows=(Workflow.sequence("research", list(AGENTS)),),
    )
    run = orc.submit("research", "the telegraph")
    with session_scope(orc.database_url) as session:
        session.exec(
            insert(StepRow).values(
                [
                    {
                        "id": new_id(),
                        "workflow_id": run.id,
                        "position": position,
                        "agent_id": agent,
                        "node": agent if with_graph else None,
                    }
                    for position, agent in ((1, "writer"), (2, "reviewer"))
                ]
            )
        )
        if not with_graph:
            session.exec(
                update(WorkflowRow).where(col(WorkflowRow.id) == run.id).values(graph=None)
            )
            session.exec(
                update(StepRow).where(col(StepRow.workflow_id) == run.id).values(node=None)
            )
    # decided from here on by a process that has not seen the run (a new coordinator)
    orc._coordinator = Coordinator(orc.team, orc.bus, orc.settings)
    orc._runner = None
    return orc, bus, run


def _steps(orc, run_id: str) -> list[tuple[int, str, str]]:  # type: ignore[no-untyped-def]
    with session_scope(orc.database_url) as session:
        rows = session.exec(
            select(StepRow).where(StepRow.workflow_id == run_id).order_by(col(StepRow.position))
        ).all()
    return [(row.position, row.agent_id, row.status) for row in rows]


def test_a_run_from_before_graphs_finishes_as_the_sequence_of_its_steps(
    inline_team: TeamFactory,
) -> None:
    orc, bus, run = _made_at_submit(inline_team, with_graph=False)
    drain(orc, bus)

    result = run.result()
    assert result.status is WorkflowStatus.SUCCEEDED, result.error
    # the steps made at submit ran in turn, and no other was made
    assert _steps(orc, run.id) == [
        (0, "researcher", "succeeded"),
        (1, "writer", "succeeded"),
        (2, "reviewer", "succeeded"),
    ]
    assert result.steps[1].output and result.output == result.steps[2].output


def test_a_run_whose_steps_were_all_made_at_submit_uses_them_in_turn(
    inline_team: TeamFactory,
) -> None:
    orc, bus, run = _made_at_submit(inline_team, with_graph=True)
    drain(orc, bus)

    result = run.result()
    assert result.status is WorkflowStatus.SUCCEEDED, result.error
    assert _steps(orc, run.id) == [
        (0, "researcher", "succeeded"),
        (1, "writer", "succeeded"),
        (2, "reviewer", "succeeded"),
    ]
    writer = result.steps[1]
    assert writer.node == "writer" and writer.attempt == 1
