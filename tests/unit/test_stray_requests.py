"""A request for a step the worker's database does not have is dead-lettered with the likely
cause (the submitter records runs in another database), never skipped in silence."""

from __future__ import annotations

from pathlib import Path

import fakeredis
from sqlmodel import select

from orchestration import Agent, Orchestrator, Settings, Workflow
from storage.db import session_scope
from storage.models import DeadLetterRow
from tests.conftest import TeamFactory
from tests.support import InlineBus

WRITER = Agent(id="writer", model="offline:echo")


def _worker_on_another_database(tmp_path: Path) -> Orchestrator:
    settings = Settings(
        redis_url="memory://",
        database_url=f"sqlite:///{tmp_path / 'workers.db'}",
        home=tmp_path,
        log_level="WARNING",
        _env_file=None,
    )
    bus = InlineBus(settings.effective_database_url)
    orc = Orchestrator("unit", settings, bus=bus, redis=fakeredis.FakeRedis())
    orc.register_agent(WRITER)
    orc.register_workflow(Workflow.sequence("w", ["writer"]))
    return orc


def test_a_request_for_a_run_the_workers_database_does_not_know_is_dead_lettered_saying_why(
    inline_team: TeamFactory, tmp_path: Path
) -> None:
    # Given a submitter on one database and a worker on another
    submitter, bus = inline_team(WRITER, workflows=(Workflow.sequence("w", ["writer"]),))
    worker = _worker_on_another_database(tmp_path)
    run = submitter.submit("w", "the telegraph")
    [(recipient, request)] = list(bus.queue)

    # When the worker gets the request
    worker.deliver(recipient, request)

    # Then it is a dead letter whose reason names the likely cause
    with session_scope(worker.database_url) as session:
        [letter] = session.exec(select(DeadLetterRow)).all()
    assert letter.message_id == request.id and letter.recipient == "writer"
    assert f"of run {run.id} is not in this worker's database" in letter.reason
    assert "the same AGENTYARD_DATABASE_URL and AGENTYARD_REDIS_URL" in letter.reason


def test_a_request_delivered_again_for_a_known_step_is_skipped_not_dead_lettered(
    inline_team: TeamFactory,
) -> None:
    orc, bus = inline_team(WRITER, workflows=(Workflow.sequence("w", ["writer"]),))
    orc.submit("w", "the telegraph")
    [(recipient, request)] = list(bus.queue)
    orc.deliver(recipient, request)

    orc.deliver(recipient, request)  # the broker delivers it a second time

    with session_scope(orc.database_url) as session:
        assert session.exec(select(DeadLetterRow)).all() == []
