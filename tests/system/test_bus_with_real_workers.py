"""The bus on real Redis, PostgreSQL and worker processes: priorities that overtake, a broadcast to
three subscribers, acknowledgements that time out (published again, escalated, dead-lettered), a
late acknowledgement, and a worker killed while it holds messages.

The team is tests/system/bus_team.py: each handler notes in Redis when it starts and finishes a
message. The acknowledgement sweeper runs in the coordinator's worker, under its lease, every
0.5 s.
"""

from __future__ import annotations

import importlib
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import redis
from sqlmodel import select

from bus.envelope import AgentMessage, MessageType
from orchestration import Orchestrator
from storage.db import session_scope
from storage.models import DeadLetterRow, MessageAckRow, MessageRow
from tests.system.conftest import ON_BOTH_BROKERS, ROOT, agentyard
from workers.processes import WorkerProcess, wait_for_workers

pytestmark = [pytest.mark.integration, pytest.mark.system]

TEAM = "tests.system.bus_team:orc"
T = TypeVar("T")


@pytest.fixture
def extra_env() -> dict[str, str]:
    return {
        "AGENTYARD_ACK_SWEEP_INTERVAL_S": "0.5",
        # A message a killed worker held comes back from the broker after the visibility
        # timeout: short here so that the test sees it happen.
        "AGENTYARD_VISIBILITY_TIMEOUT_S": "6",
        "AGENTYARD_TASK_TIME_LIMIT_S": "5",
    }


@pytest.fixture
def team(env: dict[str, str]) -> Orchestrator:
    import tests.system.bus_team as module

    return importlib.reload(module).orc


@pytest.fixture
def workers(env: dict[str, str], tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    started: list[WorkerProcess] = []

    def start(name: str, *args: str) -> WorkerProcess:
        process = WorkerProcess(
            TEAM, *args, "--name", name, env=env, cwd=ROOT, log_path=tmp_path / f"{name}.log"
        )
        started.append(process.start())
        return process

    yield start
    for process in reversed(started):
        process.stop()


def _notes(team: Orchestrator, event: str = "finished") -> list[dict[str, Any]]:
    client = redis.Redis.from_url(team.settings.redis_url or "")
    key = f"{team.settings.redis_key_prefix}bus-test:notes"
    notes = [json.loads(raw) for raw in client.lrange(key, 0, -1)]
    client.close()
    return [note for note in notes if note["event"] == event]


def _wait(what: str, done: Callable[[], T], timeout_s: float = 30.0) -> T:
    """What ``done`` returns once it is true (it is asked again until then)."""
    deadline = time.monotonic() + timeout_s
    while not (found := done()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
    return found


def _message(to: str | tuple[str, ...], **fields: Any) -> AgentMessage:
    return AgentMessage(type=MessageType.NOTIFICATION, sender="tester", to=to, **fields)


def _row(team: Orchestrator, model: Any, **where: Any) -> list[Any]:
    with session_scope(team.database_url) as session:
        query = select(model)
        for name, value in where.items():
            query = query.where(getattr(model, name) == value)
        rows = session.exec(query).all()
        for row in rows:
            session.expunge(row)
        return list(rows)


def _logged(tmp_path: Path, worker: str, event: str) -> int:
    log = tmp_path / f"{worker}.log"
    return log.read_text(errors="replace").count(f'"event": "{event}"') if log.exists() else 0


@ON_BOTH_BROKERS
def test_a_priority_nine_message_published_behind_many_priority_zero_ones_is_processed_next(
    team: Orchestrator, workers: Callable[..., WorkerProcess]
) -> None:
    # One thread, prefetch 1: the worker holds one message at a time.
    sink = workers("sink", "--agents", "sink", "--concurrency", "1")
    wait_for_workers(team.celery, 1, processes=[sink])
    team.bus.publish(_message("sink", priority=0, payload={"label": "busy", "sleep_s": 1.0}))
    _wait("the worker to be busy", lambda: _notes(team, "started"))

    for i in range(30):
        team.bus.publish(_message("sink", priority=0, payload={"label": f"routine {i}"}))
    team.bus.publish(_message("sink", priority=9, payload={"label": "urgent"}))
    _wait("all 32 messages", lambda: len(_notes(team)) == 32)

    order = [note["label"] for note in _notes(team)]
    assert order[:3] == ["busy", "urgent", "routine 0"]
    assert order[2:] == [f"routine {i}" for i in range(30)]  # the rest in the order published


def test_a_broadcast_reaches_each_of_three_subscribers_once_and_each_acknowledges_it(
    team: Orchestrator, workers: Callable[..., WorkerProcess]
) -> None:
    for agent_id in ("listener-a", "listener-b", "listener-c"):
        team.bus.subscribe(agent_id, ["notification"])
    team.bus.subscribe("sink", ["query"])  # subscribed to another type
    listeners = workers("listeners", "--agents", "listener-a,listener-b,listener-c")
    wait_for_workers(team.celery, 1, processes=[listeners])

    published = team.bus.publish(
        _message("*", requires_ack=True, payload={"label": "the plan changed"})
    )
    _wait(
        "three acknowledgements",
        lambda: len(_row(team, MessageAckRow, message_id=published.message_id)) == 3,
    )

    assert published.recipients == ("listener-a", "listener-b", "listener-c")
    assert sorted(note["agent"] for note in _notes(team)) == list(published.recipients)
    (row,) = _row(team, MessageRow, id=published.message_id)
    assert row.recipients == list(published.recipients) and row.delivered_at is not None
    assert team.bus.acks is not None and team.bus.acks.waiting() == 0


def test_an_unacknowledged_message_is_published_again_escalated_then_dead_lettered(
    team: Orchestrator, workers: Callable[..., WorkerProcess], env: dict[str, str]
) -> None:
    coordinator = workers("coordinator", "--coordinator")
    forgetful = workers("forgetful", "--agents", "forgetful")
    wait_for_workers(team.celery, 2, processes=[coordinator, forgetful])

    published = team.bus.publish(
        _message("forgetful", priority=8, requires_ack=True, ack_timeout_s=1.0)
    )
    _wait("the dead letter", lambda: _row(team, DeadLetterRow, message_id=published.message_id))

    processed = [(note["attempt"], note["priority"]) for note in _notes(team)]
    assert processed == [(1, 8), (2, 9), (3, 9)]  # AGENTYARD_ACK_MAX_ATTEMPTS defaults to 3
    (letter,) = _row(team, DeadLetterRow, message_id=published.message_id)
    assert letter.recipient == "forgetful" and letter.queue == "agent.forgetful"
    assert "not acknowledged by 'forgetful' within 1.0s, 3 times" in letter.reason
    (row,) = _row(team, MessageRow, id=published.message_id)
    assert (row.attempt, row.priority) == (3, 9)
    time.sleep(2.0)  # a few more sweeps: it is not published a fourth time
    assert len(_notes(team)) == 3

    # The dead letter is listed, and can be published again by hand, as the next attempt.
    listed = agentyard(env, "deadletters", "--limit", "5")
    assert listed.returncode == 0, listed.stderr
    assert letter.id in listed.stdout and "not acknowledged by 'forgetful'" in listed.stdout
    again = agentyard(env, "deadletters", TEAM, "--republish", letter.id)
    assert again.returncode == 0, again.stderr
    assert f"published message {published.message_id} again to forgetful as attempt 4" in (
        again.stdout
    )
    _wait("the fourth attempt", lambda: len(_notes(team)) == 4)
    assert _notes(team)[-1]["attempt"] == 4
    refused = agentyard(env, "deadletters", TEAM, "--republish", letter.id)
    assert refused.returncode == 2 and "was published again" in refused.stderr


def test_a_workflows_requests_and_responses_are_listed_in_order_by_the_messages_command(
    team: Orchestrator, workers: Callable[..., WorkerProcess], env: dict[str, str]
) -> None:
    coordinator = workers("coordinator", "--coordinator")
    sink = workers("sink", "--agents", "sink")
    wait_for_workers(team.celery, 2, processes=[coordinator, sink])

    run = team.submit("relay", "pass it on")
    assert run.wait(timeout=30).status.value == "succeeded"
    listed = agentyard(env, "messages", run.id)

    assert listed.returncode == 0, listed.stderr
    lines = [line.split() for line in listed.stdout.splitlines()[2:]]
    # time (two words), id, type, sender, recipients, ...
    assert [(line[3], line[4], line[5]) for line in lines] == [
        ("request", "coordinator", "sink"),
        ("response", "sink", "coordinator"),
    ]


def test_a_late_acknowledgement_keeps_the_copy_published_again_from_being_processed(
    team: Orchestrator, workers: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    coordinator = workers("coordinator", "--coordinator")
    slow = workers("slow", "--agents", "slow", "--concurrency", "1")
    wait_for_workers(team.celery, 2, processes=[coordinator, slow])

    # The handler takes 2.5 s; the acknowledgement is due after 1 s, so the sweeper publishes a
    # second copy while the first is still being processed.
    published = team.bus.publish(
        _message("slow", requires_ack=True, ack_timeout_s=1.0, payload={"sleep_s": 2.5})
    )
    _wait(
        "the late acknowledgement",
        lambda: _row(team, MessageAckRow, message_id=published.message_id),
    )
    _wait("the second copy", lambda: _logged(tmp_path, "slow", "bus.delivery_skipped") == 1)

    assert [note["attempt"] for note in _notes(team, "started")] == [1]
    (ack,) = _row(team, MessageAckRow, message_id=published.message_id)
    assert (ack.recipient, ack.attempt) == ("slow", 2)
    time.sleep(1.5)  # past the second copy's deadline: nothing more is published
    assert len(_notes(team, "started")) == 1
    assert not _row(team, DeadLetterRow, message_id=published.message_id)


@ON_BOTH_BROKERS
def test_messages_a_killed_worker_held_are_processed_by_another_and_none_twice(
    team: Orchestrator, workers: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    coordinator = workers("coordinator", "--coordinator")
    doomed = workers("doomed", "--agents", "slow", "--concurrency", "2")
    wait_for_workers(team.celery, 2, processes=[coordinator, doomed])
    # One message asks for an acknowledgement within 4 s of when processing begins (the sweeper
    # publishes it again after that), one does not (the broker gives it back after its
    # visibility timeout, 6 s here). Each takes its handler 2 s.
    acked = team.bus.publish(
        _message(
            "slow", requires_ack=True, ack_timeout_s=4.0, payload={"label": "ack", "sleep_s": 2}
        )
    )
    plain = team.bus.publish(_message("slow", payload={"label": "plain", "sleep_s": 2}))
    _wait("both to be taken", lambda: len(_notes(team, "started")) == 2)

    doomed.kill()
    survivor = workers("survivor", "--agents", "slow", "--concurrency", "2")
    _wait("both to be processed", lambda: len(_notes(team)) == 2, timeout_s=60)
    # the killed worker's own copy of the acknowledged message comes back too, and is skipped
    _wait(
        "the old copy",
        lambda: _logged(tmp_path, "survivor", "bus.delivery_skipped") == 1,
        timeout_s=60,
    )

    assert survivor.alive()
    finished = [(note["label"], note["attempt"]) for note in _notes(team)]
    assert sorted(finished) == [("ack", 2), ("plain", 1)]  # published again / given back
    # The acknowledgement and the delivered stamp are committed after the handler's last note:
    # waited for, not read at once (on RabbitMQ the old copy is skipped before either lands).
    acks = _wait(
        "the acknowledgement on record",
        lambda: _row(team, MessageAckRow, message_id=acked.message_id),
    )
    assert [(a.recipient, a.attempt) for a in acks] == [("slow", 2)]
    (row,) = _wait(
        "the plain message stamped delivered",
        lambda: [r for r in _row(team, MessageRow, id=plain.message_id) if r.delivered_at],
    )
    assert row.delivered_at is not None
    assert len(_notes(team, "started")) == 4  # two on the killed worker, two on the survivor
