"""The claim and record stages alone, on SQLite: the claim lets one delivery of an attempt
through, and the record rides out a connection lost with its commit without recording twice."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy.exc
from sqlalchemy import update
from sqlmodel import col, select
from structlog.testing import capture_logs

from orchestration import Agent, Orchestrator, Workflow
from orchestration.step.call import Call, ModelCalls
from orchestration.step.claim import Attempt, Claims
from orchestration.step.record import Recorded, Records
from storage.db import session_scope
from storage.models import StepRow, TraceRow, utcnow
from tests.conftest import TeamFactory
from tests.support import InlineBus
from workers.providers.registry import Providers


def _team(inline_team: TeamFactory) -> tuple[Orchestrator, InlineBus]:
    return inline_team(
        Agent(id="writer", model="offline:echo", max_tokens=200),
        workflows=(Workflow.sequence("w", ["writer"]),),
    )


def _claimed(orc: Orchestrator, bus: InlineBus) -> tuple[Claims, Attempt, Call]:
    """The first queued request claimed, and its call made."""
    _, message = bus.queue.popleft()
    claims = Claims(orc.settings)
    agent = orc.team.agent("writer")
    claimed = claims.claim(message, str(message.payload["step_id"]), 1, agent)
    assert claimed is not None
    this, request = claimed
    return claims, this, ModelCalls(orc.team, Providers(orc.settings)).call(agent, request)


def _records(orc: Orchestrator) -> Records:
    return Records(orc.team, orc.bus, orc.coordinator(), orc.database_url)


def _traces(orc: Orchestrator) -> int:
    with session_scope(orc.database_url) as session:
        return len(session.exec(select(TraceRow)).all())


def test_a_second_delivery_of_an_attempt_is_fenced_off_at_the_claim(
    inline_team: TeamFactory,
) -> None:
    # Given an attempt claimed by the delivery of its request
    orc, bus = _team(inline_team)
    orc.submit("w", "the telegraph")
    claims, this, _ = _claimed(orc, bus)

    # When the broker delivers the same request again
    again = claims.claim(this.message, this.step_id, this.number, this.agent)

    # Then that delivery is not let through
    assert again is None
    assert (this.call_id, this.requested_agent_id, this.parent_step_id) == (
        f"{this.step_id}:1",
        "writer",
        None,
    )


def test_a_record_whose_commit_landed_as_the_connection_was_lost_is_not_recorded_again(
    inline_team: TeamFactory,
) -> None:
    # Given a recording transaction that commits, then loses its connection before it is told
    orc, bus = _team(inline_team)
    orc.submit("w", "the telegraph")
    _, this, call = _claimed(orc, bus)
    records = _records(orc)
    lost: list[Recorded] = []

    def commit_then_lose_the_connection(this: Attempt, call: Call) -> Recorded:
        recorded = records.once(this, call)
        if not lost:
            lost.append(recorded)
            raise sqlalchemy.exc.OperationalError("COMMIT", {}, Exception("connection lost"))
        return recorded

    # When the stage records the call
    with capture_logs() as logs:
        recorded = records.record(this, call, commit_then_lose_the_connection)

    # Then it finds the record there and runs nothing again: the sweep routes what it decided
    assert recorded is None and lost and lost[0].held
    assert _traces(orc) == 1
    assert "step.recorded_before_the_connection_was_lost" in [line["event"] for line in logs]


def test_an_attempt_given_up_on_while_it_ran_is_recorded_fenced_off_with_nothing_decided(
    inline_team: TeamFactory,
) -> None:
    # Given an attempt whose lease ran out while the model answered, and the sweep gave it up
    orc, bus = _team(inline_team)
    orc.submit("w", "the telegraph")
    _, this, call = _claimed(orc, bus)
    with session_scope(orc.database_url) as session:
        session.exec(
            update(StepRow)
            .where(col(StepRow.id) == this.step_id)
            .values(lease_until=utcnow() - timedelta(seconds=1))
        )
    assert orc.maintenance().sweep()["expired_leases"] == 1

    # When its call is recorded
    recorded = _records(orc).record(this, call, _records(orc).once)

    # Then the call is on record, and the attempt held nothing to decide on
    assert recorded is not None and not recorded.held and not recorded.decision.messages
    assert _traces(orc) == 1
