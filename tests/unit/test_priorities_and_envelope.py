from datetime import UTC, datetime
from typing import Any

import pytest

from bus import priorities
from bus.brokers import RABBITMQ, REDIS, broker_for
from bus.envelope import AgentMessage, MessageType, advance, is_step_request, request_step
from bus.routing import route_for
from storage.errors import InvalidRequest


def test_the_most_urgent_priority_maps_to_the_redis_transports_first_served_step() -> None:
    assert REDIS.wire_priority(9) == 0
    assert REDIS.wire_priority(0) == 9
    assert REDIS.wire_priority(5) == 4


def test_rabbitmq_serves_the_highest_priority_first_so_priorities_go_on_the_wire_as_they_are() -> (
    None
):
    assert [RABBITMQ.wire_priority(p) for p in (0, 5, 9)] == [0, 5, 9]


@pytest.mark.parametrize(
    ("url", "broker"),
    [
        ("redis://h:6379/0", REDIS),
        ("rediss://h:6380/0", REDIS),
        ("memory://", REDIS),
        (None, REDIS),
        ("amqp://guest:guest@h:5672//", RABBITMQ),
        ("amqps://h/vhost", RABBITMQ),
        ("pyamqp://h//", RABBITMQ),
    ],
)
def test_the_broker_is_told_by_the_scheme_of_its_url(url: str | None, broker: object) -> None:
    assert broker_for(url) is broker


@pytest.mark.parametrize("bad", [-1, 10, True, 2.5, "5"])
@pytest.mark.parametrize("broker", [REDIS, RABBITMQ], ids=["redis", "rabbitmq"])
def test_a_priority_outside_zero_to_nine_is_refused(bad: object, broker: Any) -> None:
    with pytest.raises(InvalidRequest, match=r"outside 0\.\.9"):
        broker.wire_priority(bad)


def test_a_message_survives_encode_and_decode_unchanged() -> None:
    message = request_step(
        agent_id="writer", workflow_id="w1", step_id="s1", attempt=2, priority=7, workflow="w"
    )
    decoded = AgentMessage.decode(message.encode())
    assert decoded == message
    assert decoded.timestamp.tzinfo is not None


def test_an_encoded_message_is_plain_json_with_ids_and_no_prompt() -> None:
    encoded = request_step(
        agent_id="writer",
        workflow_id="w1",
        step_id="s1",
        attempt=1,
        priority=5,
        workflow="research",
        budget_micro=250_000,
    ).encode()
    assert encoded["payload"] == {
        "step_id": "s1",
        "attempt": 1,
        "workflow": "research",
        "budget_micro": 250_000,
    }
    assert set(encoded) == {
        "id",
        "type",
        "sender",
        "to",
        "payload",
        "workflow_id",
        "step_id",
        "priority",
        "attempt",
        "timestamp",
        "requires_ack",
        "ack_timeout_s",
        "payload_ref",
    }


@pytest.mark.parametrize("garbage", [None, "text", {"type": "request"}, {"unexpected": 1}])
def test_something_that_is_not_a_message_is_refused_with_a_clear_error(garbage: object) -> None:
    with pytest.raises(InvalidRequest, match="not an agentyard message"):
        AgentMessage.decode(garbage)


def test_a_message_with_a_bad_priority_cannot_be_built() -> None:
    with pytest.raises(ValueError, match=r"outside 0\.\.9"):
        AgentMessage(
            type=MessageType.NOTIFICATION,
            sender="x",
            to=("y",),
            priority=11,
            timestamp=datetime.now(UTC),
        )


def _note(**fields: object) -> AgentMessage:
    base: dict[str, object] = {"type": "notification", "sender": "writer", "to": ("reviewer",)}
    return AgentMessage(**(base | fields))


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"payload": {"when": datetime.now(UTC)}}, "payload: .*not plain JSON"),
        ({"payload": {"x": float("nan")}}, "payload: .*not plain JSON"),
        ({"to": ("reviewer", "reviewer")}, "to: .*named twice"),
        ({"to": ()}, "to: "),
        ({"to": ("*", "reviewer")}, "to: .*stands alone"),
        ({"type": "gossip"}, "type: "),
        ({"ack_timeout_s": 0}, "ack_timeout_s: "),
    ],
)
def test_a_message_that_does_not_validate_is_refused_naming_the_field(
    fields: dict[str, object], reason: str
) -> None:
    with pytest.raises(InvalidRequest, match=f"not a valid agentyard message: {reason}"):
        _note(**fields)


def test_a_message_to_every_subscriber_says_so() -> None:
    assert _note(to=("*",)).broadcast
    assert not _note().broadcast


def test_a_message_asking_for_acknowledgement_survives_encode_and_decode() -> None:
    message = _note(requires_ack=True, ack_timeout_s=5, attempt=3, payload={"n": [1, "two"]})
    assert AgentMessage.decode(message.encode()) == message


def test_agents_and_the_coordinator_have_their_own_queues() -> None:
    assert route_for("researcher") == ("agent.researcher", "agent.researcher")
    assert route_for("coordinator").queue == "coordinator"
    assert advance(sender="a", workflow_id="w", priority=5).to == ("coordinator",)


@pytest.mark.parametrize(("priority", "published_again"), [(0, 0), (5, 5), (7, 7), (8, 9), (9, 9)])
def test_an_unacknowledged_message_of_priority_eight_or_more_is_escalated_to_nine(
    priority: int, published_again: int
) -> None:
    assert priorities.escalated(priority) == published_again


def test_one_recipient_can_be_named_without_a_list() -> None:
    message = AgentMessage(type=MessageType.QUERY, sender="writer", to="reviewer")
    assert message.to == ("reviewer",)


def test_only_the_coordinators_step_requests_go_to_the_step_runner() -> None:
    request = request_step(
        agent_id="writer", workflow_id="w", step_id="s", attempt=1, priority=5, workflow="x"
    )
    lookalike = AgentMessage(
        type=MessageType.REQUEST, sender="reviewer", to=("writer",), payload={"step_id": "s"}
    )
    assert is_step_request(request)
    assert not is_step_request(lookalike)
