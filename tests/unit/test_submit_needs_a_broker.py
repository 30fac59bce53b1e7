"""A run is recorded only when its requests can be sent: an unreachable broker at submit is
``BrokerUnavailable``, never "submitted" and a run that starts (or never starts) later."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from sqlmodel import func, select

from orchestration import (
    Agent,
    BrokerUnavailable,
    DatabaseUnavailable,
    Orchestrator,
    Settings,
    Workflow,
)
from storage.db import migrate, session_scope
from storage.models import WorkflowRow
from tests.conftest import TeamFactory


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])  # nothing listens once it is closed


def _runs(url: str) -> int:
    with session_scope(url) as session:
        return int(session.exec(select(func.count()).select_from(WorkflowRow)).one())


def test_a_broker_nobody_answers_on_is_refused_at_submit_and_nothing_is_recorded(
    tmp_path: Path,
) -> None:
    url = f"redis://:hunter2@127.0.0.1:{_closed_port()}/0"
    settings = Settings(
        redis_url=url,
        database_url=f"sqlite:///{tmp_path / 'a.db'}",
        home=tmp_path,
        log_level="WARNING",
        _env_file=None,
    )
    orc = Orchestrator("unit", settings)
    orc.register_agent(Agent(id="writer", model="offline:echo"))
    orc.register_workflow(Workflow.sequence("w", ["writer"]))

    with pytest.raises(
        BrokerUnavailable, match="cannot reach the broker at redis://:\\*\\*\\*@"
    ) as refused:
        orc.submit("w", "the telegraph")

    assert "nothing was recorded" in str(refused.value)
    assert "hunter2" not in str(refused.value)
    assert refused.value.run_id is None
    assert _runs(orc.database_url) == 0


def test_a_request_the_broker_drops_after_the_check_is_reported_with_the_recorded_run(
    inline_team: TeamFactory,
) -> None:
    orc, bus = inline_team(
        Agent(id="writer", model="offline:echo"),
        workflows=(Workflow.sequence("w", ["writer"]),),
    )
    bus.broker_down = True

    with pytest.raises(BrokerUnavailable, match="is recorded, but the broker did not take") as told:
        orc.submit("w", "the telegraph")

    assert told.value.run_id is not None
    assert orc.run(told.value.run_id).id == told.value.run_id  # a sweep will dispatch it
    assert _runs(orc.database_url) == 1


def test_a_database_nobody_answers_on_is_database_unavailable_naming_it_without_its_password() -> (
    None
):
    url = f"postgresql+psycopg://agentyard:hunter2@127.0.0.1:{_closed_port()}/agentyard"
    with pytest.raises(DatabaseUnavailable, match="cannot reach the database at") as refused:
        migrate(url)
    assert "agentyard:***@127.0.0.1" in str(refused.value)
    assert "hunter2" not in str(refused.value) and "\n" not in str(refused.value)
