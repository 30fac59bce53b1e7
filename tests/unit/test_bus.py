"""The bus end to end in one process: publish, broadcast, handlers, acknowledgements and their
sweeper, on SQLite and fakeredis running the real Lua scripts. The same paths run on real
servers and workers in tests/system/test_bus_with_real_workers.py."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import fakeredis
import pytest
from sqlmodel import col, select

from bus.envelope import AgentMessage, MessageType
from bus.inbox import Delivery
from orchestration import Agent, InvalidRequest, Orchestrator, Settings
from storage.ack_store import AckStore, entry
from storage.db import session_scope
from storage.errors import BrokerUnavailable, ConfigurationError, MessageNotFound
from storage.models import DeadLetterRow, MessageAckRow, MessageRow
from storage.subscription_store import SubscriptionStore
from tests.support import InlineBus

AGENTS = ("planner", "writer", "reviewer", "critic")
TIMEOUT_S = 0.05
LONG_TIMEOUT_S = 600.0  # never reached in a test


class Team:
    """An orchestrator on an in-memory broker, with what each agent's handler received."""

    def __init__(self, settings: Settings, fake: fakeredis.FakeRedis) -> None:
        self.fake = fake
        self.bus = InlineBus(
            settings.effective_database_url,
            subscriptions=SubscriptionStore(fake, team="unit"),
            acks=AckStore(fake, team="unit"),
            inline_payload_bytes=1000,
            is_recipient=lambda name: name in {"coordinator", *AGENTS},
        )
        self.orc = Orchestrator("unit", settings, bus=self.bus, redis=fake)
        self.received: list[tuple[str, AgentMessage]] = []
        self.failing: set[str] = set()
        for agent_id in AGENTS:
            self.orc.register_agent(Agent(id=agent_id, model="offline:echo"))
            self.orc.on_message(agent_id)(self._handler(agent_id))

    def _handler(self, agent_id: str) -> Any:
        def handle(message: AgentMessage) -> None:
            self.received.append((agent_id, message))
            if agent_id in self.failing:
                raise RuntimeError(f"{agent_id} cannot take it now")

        return handle

    def deliver_all(self) -> list[Delivery | None]:
        outcomes = []
        while self.bus.queue:
            recipient, message = self.bus.queue.popleft()
            outcomes.append(self.orc.deliver(recipient, message))
        return outcomes

    def row(self, message_id: str) -> MessageRow:
        with session_scope(self.orc.database_url) as session:
            row = session.get(MessageRow, message_id)
            assert row is not None
            session.expunge(row)
            return row

    def dead_letters(self) -> list[DeadLetterRow]:
        with session_scope(self.orc.database_url) as session:
            rows = session.exec(select(DeadLetterRow).order_by(col(DeadLetterRow.received_at)))
            return [row for row in rows.all() if not session.expunge(row)]

    def sweep(self) -> dict[str, int]:
        sweeper = self.orc.ack_sweeper()
        assert sweeper is not None
        return sweeper.sweep()


@pytest.fixture
def team(unit_settings: Settings) -> Iterator[Team]:
    fake = fakeredis.FakeRedis()
    yield Team(unit_settings, fake)
    fake.close()


def _note(**fields: Any) -> AgentMessage:
    defaults: dict[str, Any] = {"type": MessageType.NOTIFICATION, "sender": "planner"}
    return AgentMessage(**(defaults | fields))


# -- publishing ------------------------------------------------------------------------------------


def test_a_message_is_on_record_before_it_reaches_a_queue(team: Team) -> None:
    seen_on_record: list[bool] = []
    send = team.bus.send_copy

    def send_and_check(message: AgentMessage, recipient: str) -> None:
        seen_on_record.append(team.row(message.id).payload["payload"] == {"draft": 1})
        send(message, recipient)

    team.bus.send_copy = send_and_check  # type: ignore[method-assign]
    team.orc.bus.publish(_note(to=("writer",), payload={"draft": 1}))

    assert seen_on_record == [True]


def test_a_message_given_as_a_dict_is_validated_and_published(team: Team) -> None:
    published = team.orc.bus.publish(
        {"type": "query", "sender": "planner", "to": "writer", "payload": {"q": "ready?"}}
    )

    assert published.recipients == ("writer",)
    assert [(r, m.type) for r, m in team.bus.queue] == [("writer", MessageType.QUERY)]


def test_a_message_that_does_not_validate_is_refused_at_publish_naming_each_field(
    team: Team,
) -> None:
    with pytest.raises(InvalidRequest) as refused:
        team.orc.bus.publish({"type": "gossip", "sender": "planner", "to": [], "priority": 12})

    reason = str(refused.value)
    assert "type:" in reason and "to:" in reason and "priority:" in reason
    assert not team.bus.queue


def test_a_message_to_an_agent_nobody_registered_is_refused_before_anything_is_written(
    team: Team,
) -> None:
    message = _note(to=("writter",))
    with pytest.raises(InvalidRequest, match="no agent 'writter' is registered"):
        team.orc.bus.publish(message)

    with session_scope(team.orc.database_url) as session:
        assert session.get(MessageRow, message.id) is None


def test_a_message_from_a_sender_nobody_registered_is_refused_before_anything_is_written(
    team: Team,
) -> None:
    message = _note(sender="plannr", to=("writer",))
    with pytest.raises(InvalidRequest, match="sender: no agent 'plannr' is registered"):
        team.orc.bus.publish(message)

    with session_scope(team.orc.database_url) as session:
        assert session.get(MessageRow, message.id) is None
    assert not team.bus.queue


def test_a_message_to_several_agents_reaches_each_at_its_priority(team: Team) -> None:
    team.orc.bus.publish(_note(to=("writer", "reviewer"), priority=8))

    assert [(r, m.priority) for r, m in team.bus.queue] == [("writer", 8), ("reviewer", 8)]
    team.deliver_all()
    assert sorted(agent for agent, _ in team.received) == ["reviewer", "writer"]


def test_a_broadcast_reaches_every_subscriber_of_its_type_but_its_sender(team: Team) -> None:
    for agent_id in ("writer", "reviewer", "critic", "planner"):
        team.orc.bus.subscribe(agent_id, ["notification"])
    team.orc.bus.subscribe("writer", [MessageType.QUERY])

    published = team.orc.bus.publish(_note(to="*", payload={"news": "deadline moved"}))
    team.deliver_all()

    assert published.recipients == ("critic", "reviewer", "writer")
    assert sorted(agent for agent, _ in team.received) == ["critic", "reviewer", "writer"]
    assert team.row(published.message_id).recipients == ["critic", "reviewer", "writer"]


def test_an_agent_that_unsubscribed_receives_no_more_broadcasts(team: Team) -> None:
    team.orc.bus.subscribe("writer", ["notification"])
    team.orc.bus.subscribe("critic", ["notification"])
    team.orc.bus.unsubscribe("writer", ["notification"])

    assert team.orc.bus.publish(_note(to="*")).recipients == ("critic",)


def test_a_broadcast_nobody_subscribed_to_is_on_record_and_goes_nowhere(team: Team) -> None:
    published = team.orc.bus.publish(_note(to="*"))

    assert published.recipients == ()
    assert not team.bus.queue
    assert team.row(published.message_id).recipients == []


def test_subscribing_to_a_type_that_does_not_exist_is_refused(team: Team) -> None:
    with pytest.raises(InvalidRequest, match="message types are request, response"):
        team.orc.bus.subscribe("writer", ["gossip"])


def test_broadcast_and_acknowledgements_without_a_shared_redis_say_what_to_set(
    unit_settings: Settings,
) -> None:
    bus = InlineBus(unit_settings.effective_database_url)
    with pytest.raises(ConfigurationError, match="AGENTYARD_REDIS_URL"):
        bus.publish(_note(to="*"))
    with pytest.raises(ConfigurationError, match="AGENTYARD_REDIS_URL"):
        bus.publish(_note(to=("writer",), requires_ack=True))


def test_a_large_payload_stays_in_the_database_and_its_consumer_loads_it(team: Team) -> None:
    chapter = {"text": "x" * 5000}

    published = team.orc.bus.publish(_note(to=("writer",), payload=chapter))
    (_, on_the_wire) = team.bus.queue[0]
    team.deliver_all()

    assert published.by_reference
    assert on_the_wire.payload == {} and on_the_wire.payload_ref == published.message_id
    assert team.received[0][1].payload == chapter
    assert team.row(published.message_id).payload["payload"] == chapter


# -- the receiving end ---------------------------------------------------------------------------


def test_a_handled_message_is_stamped_delivered(team: Team) -> None:
    published = team.orc.bus.publish(_note(to=("writer",)))

    assert team.deliver_all() == [Delivery.HANDLED]
    assert team.row(published.message_id).delivered_at is not None


def test_a_message_for_an_agent_without_a_handler_is_dead_lettered_with_the_reason(
    unit_settings: Settings,
) -> None:
    fake = fakeredis.FakeRedis()
    bus = InlineBus(unit_settings.effective_database_url, acks=AckStore(fake, team="unit"))
    orc = Orchestrator("unit", unit_settings, bus=bus, redis=fake)
    orc.register_agent(Agent(id="writer", model="offline:echo"))
    message = _note(to=("writer",), requires_ack=True)
    orc.bus.publish(message)

    recipient, copy = bus.queue.popleft()
    assert orc.deliver(recipient, copy) is Delivery.DEAD_LETTERED

    with session_scope(orc.database_url) as session:
        (letter,) = session.exec(select(DeadLetterRow)).all()
    assert (letter.message_id, letter.recipient) == (message.id, "writer")
    assert "no handler" in letter.reason and "orc.on_message('writer')" in letter.reason
    assert AckStore(fake, team="unit").waiting() == 0  # and it is not published again


def test_a_handler_that_fails_on_a_message_not_awaiting_an_ack_dead_letters_it(
    team: Team,
) -> None:
    team.failing.add("writer")
    published = team.orc.bus.publish(_note(to=("writer",)))

    assert team.deliver_all() == [Delivery.DEAD_LETTERED]
    (letter,) = team.dead_letters()
    assert letter.message_id == published.message_id
    assert "RuntimeError: writer cannot take it now" in letter.reason


def test_registering_a_handler_for_an_unknown_agent_is_refused(team: Team) -> None:
    with pytest.raises(InvalidRequest):
        team.orc.on_message("nobody")


# -- acknowledgements ----------------------------------------------------------------------------


def test_a_message_is_acknowledged_in_redis_and_postgres_when_its_handler_returns(
    team: Team,
) -> None:
    published = team.orc.bus.publish(_note(to=("writer", "reviewer"), requires_ack=True))
    assert team.bus.acks is not None and team.bus.acks.waiting() == 2

    team.deliver_all()

    assert team.bus.acks.waiting() == 0
    with session_scope(team.orc.database_url) as session:
        acks = session.exec(
            select(MessageAckRow.recipient, MessageAckRow.attempt).where(
                MessageAckRow.message_id == published.message_id
            )
        ).all()
    assert sorted(acks) == [("reviewer", 1), ("writer", 1)]


def test_a_handler_can_acknowledge_by_itself_when_its_work_is_done(team: Team) -> None:
    kept: list[AgentMessage] = []
    team.orc.on_message("critic", auto_ack=False)(kept.append)
    published = team.orc.bus.publish(_note(to=("critic",), requires_ack=True))
    team.deliver_all()
    assert team.bus.acks is not None and team.bus.acks.waiting() == 1

    team.orc.bus.acknowledge(kept[0].id, "critic")

    assert team.bus.acks.waiting() == 0
    assert team.orc.bus.is_acknowledged(published.message_id, "critic")


def test_acknowledging_a_message_not_sent_to_that_agent_is_refused(team: Team) -> None:
    published = team.orc.bus.publish(_note(to=("writer",), requires_ack=True))

    with pytest.raises(MessageNotFound, match="was not sent to 'critic'; it went to writer"):
        team.orc.bus.acknowledge(published.message_id, "critic")
    with pytest.raises(MessageNotFound, match="no message 'nope'"):
        team.orc.bus.acknowledge("nope", "writer")


def test_an_unacknowledged_message_is_published_again_escalated_then_dead_lettered(
    team: Team,
) -> None:
    team.failing.add("writer")
    published = team.orc.bus.publish(
        _note(to=("writer",), priority=8, requires_ack=True, ack_timeout_s=TIMEOUT_S)
    )
    copies = []
    for _ in range(3):  # AGENTYARD_ACK_MAX_ATTEMPTS defaults to 3
        (_, copy) = team.bus.queue[0]
        copies.append((copy.attempt, copy.priority))
        assert team.deliver_all() == [Delivery.FAILED]
        time.sleep(TIMEOUT_S * 1.5)
        team.sweep()

    assert copies == [(1, 8), (2, 9), (3, 9)]
    assert not team.bus.queue
    (letter,) = team.dead_letters()
    assert (letter.message_id, letter.recipient) == (published.message_id, "writer")
    assert "not acknowledged by 'writer'" in letter.reason and "3 times" in letter.reason
    row = team.row(published.message_id)
    assert (row.attempt, row.priority) == (3, 9)
    assert team.sweep()["dead_lettered"] == 0  # given up once, for good


def test_a_message_below_priority_eight_keeps_its_priority_when_published_again(
    team: Team,
) -> None:
    team.orc.bus.publish(
        _note(to=("writer",), priority=3, requires_ack=True, ack_timeout_s=TIMEOUT_S)
    )
    team.bus.queue.clear()  # lost on the way
    time.sleep(TIMEOUT_S * 1.5)

    assert team.sweep() == {"reloaded": 0, "republished": 1, "escalated": 0, "dead_lettered": 0}
    assert [(m.attempt, m.priority) for _, m in team.bus.queue] == [(2, 3)]


def test_only_the_recipient_that_did_not_acknowledge_gets_the_message_again(team: Team) -> None:
    team.failing.add("reviewer")
    team.orc.bus.publish(
        _note(to=("writer", "reviewer"), requires_ack=True, ack_timeout_s=TIMEOUT_S)
    )
    team.deliver_all()
    time.sleep(TIMEOUT_S * 1.5)

    team.sweep()

    assert [(r, m.attempt) for r, m in team.bus.queue] == [("reviewer", 2)]


def test_a_late_acknowledgement_keeps_the_copy_published_again_from_being_processed(
    team: Team,
) -> None:
    published = team.orc.bus.publish(
        _note(to=("writer",), requires_ack=True, ack_timeout_s=TIMEOUT_S)
    )
    (recipient, first) = team.bus.queue.popleft()  # a slow worker holds the first copy
    time.sleep(TIMEOUT_S * 1.5)
    team.sweep()  # the second copy goes out
    assert [(r, m.attempt) for r, m in team.bus.queue] == [("writer", 2)]

    assert team.orc.deliver(recipient, first) is Delivery.HANDLED  # the late acknowledgement
    assert team.deliver_all() == [Delivery.ALREADY_ACKNOWLEDGED]
    time.sleep(TIMEOUT_S * 1.5)

    assert [m.id for _, m in team.received] == [published.message_id]
    assert team.sweep()["republished"] == 0 and not team.dead_letters()


def test_acknowledgements_redis_forgot_are_awaited_again_from_the_database(team: Team) -> None:
    # Deadlines far off, so that no sweep finds anything due however slow this machine is
    writer = team.orc.bus.publish(
        _note(to=("writer",), requires_ack=True, ack_timeout_s=LONG_TIMEOUT_S)
    )
    acked = team.orc.bus.publish(
        _note(to=("reviewer",), requires_ack=True, ack_timeout_s=LONG_TIMEOUT_S)
    )
    team.bus.queue.clear()
    team.orc.bus.acknowledge(acked.message_id, "reviewer")
    assert team.sweep()["reloaded"] == 0  # the first sweep finds everything awaited already
    team.fake.flushall()  # Redis loses every key

    before = time.time()
    assert team.sweep() == {"reloaded": 1, "republished": 0, "escalated": 0, "dead_lettered": 0}

    # The writer's is awaited again (not the acknowledged one), due a whole timeout from now
    acks = team.bus.acks
    assert acks is not None
    [(awaited, due)] = team.fake.zrange(f"{acks.prefix}pending", 0, -1, withscores=True)
    assert awaited.decode() == entry(writer.message_id, "writer")
    assert before + LONG_TIMEOUT_S <= due <= time.time() + LONG_TIMEOUT_S
    # ... and once that deadline has passed (moved here, rather than waited for), it goes again
    team.fake.zadd(f"{acks.prefix}pending", {awaited: 0})
    assert team.sweep()["republished"] == 1
    assert [(r, m.attempt) for r, m in team.bus.queue] == [("writer", 2)]


def test_a_copy_that_arrives_while_the_first_is_processed_is_not_processed_at_once(
    team: Team,
) -> None:
    team.orc.bus.publish(_note(to=("critic",), requires_ack=True))
    (recipient, copy) = team.bus.queue.popleft()
    outcomes: list[Delivery | None] = []
    team.orc.on_message("critic")(
        lambda message: outcomes.append(team.orc.deliver(recipient, copy))
    )

    assert team.orc.deliver(recipient, copy) is Delivery.HANDLED

    assert outcomes == [Delivery.IN_PROGRESS_ELSEWHERE]


def test_a_copy_of_an_acknowledged_message_is_not_processed_after_redis_lost_its_data(
    team: Team,
) -> None:
    team.orc.bus.publish(_note(to=("writer",), requires_ack=True))
    (recipient, copy) = team.bus.queue.popleft()
    assert team.orc.deliver(recipient, copy) is Delivery.HANDLED
    team.fake.flushall()

    assert team.orc.deliver(recipient, copy) is Delivery.ALREADY_ACKNOWLEDGED
    assert len(team.received) == 1


def test_a_copy_older_than_redis_remembers_acknowledgements_is_checked_against_the_database(
    team: Team,
) -> None:
    assert team.bus.acks is not None
    team.bus.acks.mark_loaded()
    team.orc.bus.publish(_note(to=("writer",), requires_ack=True))
    (recipient, copy) = team.bus.queue.popleft()
    team.orc.deliver(recipient, copy)
    for key in team.fake.scan_iter(match="*acked:*"):
        team.fake.delete(key)  # Redis forgot it, as it does after ACKED_KEPT_S

    old = copy.model_copy(update={"timestamp": copy.timestamp - timedelta(hours=7)})
    assert team.orc.deliver(recipient, old) is Delivery.ALREADY_ACKNOWLEDGED


def test_a_broker_that_does_not_take_a_message_is_an_error_its_publisher_sees(team: Team) -> None:
    team.bus.broker_down = True
    message = _note(to=("writer",))

    with pytest.raises(BrokerUnavailable, match="is on record but the broker did not take it"):
        team.orc.bus.publish(message)
    assert team.row(message.id).delivered_at is None


def test_a_message_awaiting_an_ack_the_broker_did_not_take_is_published_again_by_the_sweeper(
    team: Team,
) -> None:
    team.bus.broker_down = True
    team.orc.bus.publish(_note(to=("writer",), requires_ack=True, ack_timeout_s=TIMEOUT_S))
    team.bus.broker_down = False
    time.sleep(TIMEOUT_S * 1.5)

    team.sweep()

    assert [(r, m.attempt) for r, m in team.bus.queue] == [("writer", 2)]
