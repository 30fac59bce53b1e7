"""Telling a request that waits in the broker from one the broker lost (fakeredis)."""

from __future__ import annotations

import json
import time

import fakeredis
import pytest

from bus.broker_view import BrokerView
from orchestration import Agent, Workflow, WorkflowStatus
from orchestration.maintenance import Maintenance
from tests.conftest import TeamFactory
from tests.support import drain


@pytest.fixture
def fake() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis(decode_responses=True)


def _unacked(task_id: str) -> str:
    return json.dumps([{"headers": {"id": task_id}, "body": "..."}, "", "agent.writer"])


def test_queue_depth_sums_every_priority_band_under_the_prefix(fake: fakeredis.FakeRedis) -> None:
    view = BrokerView(fake, prefix="p:")
    fake.rpush("p:agent.writer", "a")
    fake.rpush("p:agent.writer:4", "b", "c")
    fake.rpush("p:agent.writer:9", "d")
    fake.rpush("agent.writer", "not ours: no prefix")

    assert view.queue_depth("agent.writer") == 4
    assert view.queue_depth("agent.reviewer") == 0


def test_unacked_task_ids_are_read_from_the_unacked_hash(fake: fakeredis.FakeRedis) -> None:
    fake.hset(
        "p:unacked", mapping={"tag1": _unacked("m1"), "tag2": "garbage", "tag3": _unacked("m3")}
    )
    assert BrokerView(fake, prefix="p:").unacked_task_ids() == {"m1", "m3"}


def test_held_since_says_when_a_worker_took_each_message_it_holds(
    fake: fakeredis.FakeRedis,
) -> None:
    fake.hset("p:unacked", mapping={"tag1": _unacked("m1"), "tag2": _unacked("m2")})
    fake.zadd("p:unacked_index", {"tag1": 1000.5})
    before = time.time()

    held = BrokerView(fake, prefix="p:").held_since()

    assert held["m1"] == 1000.5
    assert held["m2"] >= before  # kombu has not indexed it yet: taken just now


def _dispatched_writer(inline_team: TeamFactory, fake: fakeredis.FakeRedis):  # type: ignore[no-untyped-def]
    orc, bus = inline_team(
        Agent(id="writer", model="offline:echo"),
        workflows=(Workflow.sequence("w", ["writer"]),),
    )
    run = orc.submit("w", "the telegraph")
    bus.queue.clear()  # the request for the first step is "lost"
    maintenance = Maintenance(bus, orc.settings, BrokerView(fake), lost_after_s=0)
    time.sleep(0.01)
    return orc, bus, run, maintenance


def test_a_request_neither_queued_nor_held_is_dispatched_again(
    inline_team: TeamFactory, fake: fakeredis.FakeRedis
) -> None:
    orc, bus, run, maintenance = _dispatched_writer(inline_team, fake)

    assert maintenance.sweep()["lost_requests"] == 1
    drain(orc, bus)

    result = run.result()
    assert result.status is WorkflowStatus.SUCCEEDED
    assert result.steps[0].attempt == 2


def test_a_request_still_waiting_in_its_queue_is_left_alone(
    inline_team: TeamFactory, fake: fakeredis.FakeRedis
) -> None:
    _orc, _bus, run, maintenance = _dispatched_writer(inline_team, fake)
    fake.rpush("agent.writer:4", "a message ahead of it")

    assert maintenance.sweep()["lost_requests"] == 0
    assert run.result().steps[0].status == "dispatched"


def test_a_request_a_live_worker_holds_is_left_alone(
    inline_team: TeamFactory, fake: fakeredis.FakeRedis
) -> None:
    _orc, bus, run, maintenance = _dispatched_writer(inline_team, fake)
    request_id = bus.sent[-1].id
    fake.hset("unacked", "tag", _unacked(request_id))

    assert maintenance.sweep()["lost_requests"] == 0
    assert run.result().steps[0].attempt == 1


def test_a_request_a_worker_took_long_ago_and_never_started_is_dispatched_again(
    inline_team: TeamFactory, fake: fakeredis.FakeRedis
) -> None:
    orc, bus, run, _ = _dispatched_writer(inline_team, fake)
    request_id = bus.sent[-1].id
    fake.hset("unacked", "tag", _unacked(request_id))
    fake.zadd("unacked_index", {"tag": time.time() - 61})
    settings = orc.settings.model_copy(update={"unclaimed_request_after_s": 60.0})
    maintenance = Maintenance(bus, settings, BrokerView(fake), lost_after_s=0)

    assert maintenance.sweep()["lost_requests"] == 1
    step = run.result().steps[0]
    assert step.status == "attempt_failed"
    assert step.error is not None and "never started it" in step.error
    drain(orc, bus)

    result = run.result()
    assert result.status is WorkflowStatus.SUCCEEDED
    assert result.steps[0].attempt == 2


def test_a_request_a_worker_took_moments_ago_is_left_alone_however_old_its_dispatch(
    inline_team: TeamFactory, fake: fakeredis.FakeRedis
) -> None:
    orc, bus, run, _ = _dispatched_writer(inline_team, fake)
    fake.hset("unacked", "tag", _unacked(bus.sent[-1].id))
    fake.zadd("unacked_index", {"tag": time.time() - 5})
    settings = orc.settings.model_copy(update={"unclaimed_request_after_s": 60.0})
    maintenance = Maintenance(bus, settings, BrokerView(fake), lost_after_s=0)

    assert maintenance.sweep()["lost_requests"] == 0
    assert run.result().steps[0].attempt == 1
