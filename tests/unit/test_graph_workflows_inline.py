"""Workflow graphs on the real path, in-process: the coordinator, the step runner, the offline
model and SQLite, messages delivered by ``drain``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlmodel import col, func, select

from bus.envelope import COORDINATOR
from orchestration import Agent, Workflow, WorkflowStatus, fan_out, loop, parallel, route
from storage.db import session_scope
from storage.executor import _AlchemyTx
from storage.models import NodeRunRow, TraceRow
from tests.conftest import TeamFactory
from tests.support import drain, run_inline
from tests.workflow_functions import approved, classify, lines, nothing

AGENTS = (
    "researcher",
    "summarizer",
    "writer",
    "editor",
    "critic",
    "fact_checker",
    "style_checker",
    "splitter",
    "publisher",
)


def _article(inline_team: TeamFactory):  # type: ignore[no-untyped-def]
    return inline_team(
        *(Agent(id=a, model="offline:echo", system_prompt=f"You are the {a}.") for a in AGENTS),
        workflows=(
            Workflow(
                "article",
                [
                    "researcher",
                    fan_out("summarizer", over=lines, max_parallel=3),
                    "writer",
                    loop(["editor", "critic"], max_iterations=5, until=approved, converge_at=0.8),
                    parallel(["fact_checker", "style_checker"]),
                    route(
                        by=classify,
                        branches={"short": ["publisher"], "long": ["splitter", "publisher"]},
                    ),
                ],
                budget_usd=2.0,
            ),
        ),
    )


def _traces(url: str) -> int:
    with session_scope(url) as session:
        return int(session.exec(select(func.count()).select_from(TraceRow)).one())


def test_a_workflow_of_every_node_kind_runs_to_the_end_each_step_called_once(
    inline_team: TeamFactory,
) -> None:
    orc, bus = _article(inline_team)
    result = run_inline(orc, bus, "article", "the telegraph")

    assert result.status is WorkflowStatus.SUCCEEDED, result.error
    nodes = [step.node for step in result.steps]
    summaries = [s for s in result.steps if s.node == "fan_out1/summarizer"]
    assert [s.branch for s in summaries] == list(range(len(summaries))) and len(summaries) >= 5
    assert nodes.count("writer") == 1  # the join happened once: the next node ran once
    [outcome] = result.loops
    assert (outcome.node, outcome.stopped_by, outcome.iterations) == ("loop1", "converged", 2)
    assert outcome.similarity is not None and outcome.similarity >= 0.8
    editors = [s for s in result.steps if s.node == "loop1/editor"]
    assert [s.iteration for s in editors] == [1, 2]
    checks = [s for s in result.steps if s.node and s.node.startswith("parallel1/")]
    assert sorted((s.node, s.branch) for s in checks) == [
        ("parallel1/fact_checker", 0),
        ("parallel1/style_checker", 1),
    ]
    assert nodes[-1] == "route1/long/publisher"  # a joined parallel is long
    assert all(s.status == "succeeded" and s.attempt == 1 for s in result.steps)
    assert _traces(orc.database_url) == len(result.steps)  # one call per step, no more
    assert result.output == result.steps[-1].output


def test_requests_delivered_again_call_no_model_and_join_nothing_twice(
    inline_team: TeamFactory,
) -> None:
    orc, bus = _article(inline_team)
    result = run_inline(orc, bus, "article", "the telegraph")
    requests = [m for m in bus.sent if m.to[0] != COORDINATOR]

    for message in requests:  # the broker redelivers every request once more
        orc.deliver(message.to[0], message)
    drain(orc, bus)

    assert _traces(orc.database_url) == len(result.steps)
    again = orc.run(result.id).result()
    assert len(again.steps) == len(result.steps) and again.output == result.output
    with session_scope(orc.database_url) as session:
        runs = session.exec(select(NodeRunRow).order_by(col(NodeRunRow.started_at))).all()
    assert [(r.node, r.status) for r in runs] == [
        ("fan_out1", "succeeded"),
        ("loop1", "succeeded"),
        ("parallel1", "succeeded"),
        ("route1", "succeeded"),
    ]


@contextmanager
def _counting() -> Iterator[list[tuple[int, int]]]:
    """Count the statements run, and the rows they returned, through SQLite transactions."""
    counted: list[tuple[int, int]] = []
    run = _AlchemyTx.run

    def counting(self: _AlchemyTx, statement: Any, params: Any) -> Any:
        result = run(self, statement, params)
        counted.append((1, len(result.rows)))
        return result

    _AlchemyTx.run = counting  # type: ignore[method-assign]
    try:
        yield counted
    finally:
        _AlchemyTx.run = run  # type: ignore[method-assign]


def _work_per_branch(inline_team: TeamFactory, items: int) -> set[tuple[int, int]]:
    """(statements, rows read) of each branch's result but the last (which joins), in a
    fan-out of ``items`` branches, five at a time."""
    orc, bus = inline_team(
        Agent(id="summarizer", model="offline:echo"),
        workflows=(Workflow("wide", [fan_out("summarizer", over=lines, max_parallel=5)]),),
    )
    orc.submit("wide", "\n".join(f"item {n}" for n in range(items)))
    orc.step_runner()  # built before counting
    work: list[tuple[int, int]] = []
    while bus.queue:
        recipient, message = bus.queue.popleft()
        with _counting() as counted:
            orc.deliver(recipient, message)
        work.append((sum(c for c, _ in counted), sum(r for _, r in counted)))
    assert len(work) == items
    return set(work[:-1])


def test_the_coordinators_work_per_branch_does_not_grow_with_the_fan_out(
    inline_team: TeamFactory,
) -> None:
    small = _work_per_branch(inline_team, 10)
    large = _work_per_branch(inline_team, 300)

    # the same statements and rows for a branch of a 300-item fan-out as of a 10-item one: no
    # reloading of every step or branch for each one that finishes
    assert large == small
    assert max(rows for _, rows in large) < 10


@pytest.mark.parametrize(("over", "items"), [(nothing, 0), (lines, 1)])
def test_a_fan_out_of_no_item_or_one_finishes_the_run(
    over: object, items: int, inline_team: TeamFactory
) -> None:
    orc, bus = inline_team(
        Agent(id="summarizer", model="offline:echo"),
        Agent(id="writer", model="offline:echo"),
        workflows=(Workflow("w", [fan_out("summarizer", over=over), "writer"]),),  # type: ignore[arg-type]
    )
    result = run_inline(orc, bus, "w", "only item")

    assert result.status is WorkflowStatus.SUCCEEDED
    assert [s.node for s in result.steps] == ["fan_out1/summarizer"] * items + ["writer"]
