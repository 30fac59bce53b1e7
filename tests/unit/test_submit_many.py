"""`orc.submit_many`: many runs recorded in one transaction, all or none, their first requests
sent together; what `submit` refuses, it refuses before anything is written."""

from __future__ import annotations

import pytest
from sqlalchemy import func
from sqlmodel import select

from orchestration import Agent, InvalidRequest, Orchestrator, Workflow, WorkflowStatus
from orchestration.orchestrator import MAX_SUBMIT_MANY
from storage.db import session_scope
from storage.models import WorkflowRow
from tests.conftest import TeamFactory
from tests.support import InlineBus, drain


@pytest.fixture
def team(inline_team: TeamFactory) -> tuple[Orchestrator, InlineBus]:
    return inline_team(
        Agent(id="writer", model="offline:echo"),
        workflows=(Workflow.sequence("w", ["writer"]),),
    )


def _runs_on_record(orc: Orchestrator) -> int:
    orc.ensure_ready()  # the schema, should nothing have made it yet
    with session_scope(orc.database_url) as session:
        return int(session.exec(select(func.count()).select_from(WorkflowRow)).one())


def test_each_input_is_a_run_of_its_own_dispatched_in_order(
    team: tuple[Orchestrator, InlineBus],
) -> None:
    orc, bus = team

    runs = orc.submit_many("w", ["first", "second", "third"], priority=7)

    assert [m.workflow_id for _, m in bus.queue] == [run.id for run in runs]
    assert {m.priority for _, m in bus.queue} == {7}
    drain(orc, bus)
    results = [run.result() for run in runs]
    assert [r.status for r in results] == [WorkflowStatus.SUCCEEDED] * 3
    assert [r.input for r in results] == ["first", "second", "third"]


@pytest.mark.parametrize(
    ("inputs", "says"),
    [
        ("one text", "takes a list of inputs"),
        (["fine", ""], "input"),
        (["x"] * (MAX_SUBMIT_MANY + 1), f"at most {MAX_SUBMIT_MANY}"),
    ],
)
def test_what_cannot_be_submitted_is_refused_and_nothing_is_written(
    team: tuple[Orchestrator, InlineBus], inputs: object, says: str
) -> None:
    orc, bus = team

    with pytest.raises(InvalidRequest, match=says):
        orc.submit_many("w", inputs)  # type: ignore[arg-type]

    assert _runs_on_record(orc) == 0 and not bus.queue


def test_no_inputs_submit_nothing(team: tuple[Orchestrator, InlineBus]) -> None:
    orc, bus = team
    assert orc.submit_many("w", []) == [] and _runs_on_record(orc) == 0 and not bus.queue


def test_a_failure_while_recording_leaves_none_of_the_runs_on_record(
    team: tuple[Orchestrator, InlineBus], monkeypatch: pytest.MonkeyPatch
) -> None:
    orc, bus = team
    coordinator = orc.coordinator()
    start = coordinator.start
    started = 0

    def fails_on_the_third(*args: object, **kwargs: object) -> object:
        nonlocal started
        started += 1
        if started == 3:
            raise RuntimeError("the database went away")
        return start(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(coordinator, "start", fails_on_the_third)
    with pytest.raises(RuntimeError, match="went away"):
        orc.submit_many("w", ["a", "b", "c", "d"])

    assert _runs_on_record(orc) == 0 and not bus.queue
