"""Provenance on the bus through a real Celery worker (in this process), a real Redis broker and
PostgreSQL: a claim of trusted text signed with AGENTYARD_PROVENANCE_KEY arrives trusted; one
edited on the broker, or sent by a process without the key, arrives untrusted."""

from __future__ import annotations

import json
import queue
from collections.abc import Iterator
from typing import Any

import pytest
from celery.contrib.testing.worker import start_worker
from pydantic import SecretStr

from bus.envelope import AgentMessage, MessageType
from bus.provenance import WORKFLOW_INPUT, Provenance
from orchestration import Agent, Orchestrator, Settings
from storage.db import session_scope
from storage.models import MessageRow

pytestmark = pytest.mark.integration

KEY = "pk-0123456789abcdef0123456789abcdef-team"
SYSTEM = Provenance("system prompt of researcher", "trusted")
INPUT = Provenance(WORKFLOW_INPUT)


class Writer:
    """The writer's worker, with the key, and what its handler of bus messages received."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings.model_copy(update={"provenance_key": SecretStr(KEY)})
        self.orc = _team(self.settings)
        self.received: queue.Queue[AgentMessage] = queue.Queue()
        self.orc.on_message("writer")(self.received.put)

    def next(self) -> AgentMessage:
        return self.received.get(timeout=30)


def _team(settings: Settings) -> Orchestrator:
    orc = Orchestrator("provenance", settings)
    for agent_id in ("researcher", "writer"):
        orc.register_agent(Agent(id=agent_id, model="offline:echo"))
    orc.ensure_ready()
    return orc


def _note(**fields: Any) -> AgentMessage:
    defaults: dict[str, Any] = {
        "type": MessageType.NOTIFICATION,
        "sender": "researcher",
        "to": ("writer",),
        "payload": {"facts": "The telegraph came in 1837."},
    }
    return AgentMessage(**(defaults | fields))


@pytest.fixture
def writer(server_settings: Settings) -> Iterator[Writer]:
    made = Writer(server_settings)
    with start_worker(
        made.orc.celery,
        pool="threads",
        concurrency=2,
        perform_ping_check=False,
        queues=["agent.writer"],
        shutdown_timeout=10,
    ):
        yield made
    made.orc.close()


def test_a_message_published_with_trusted_provenance_arrives_trusted(writer: Writer) -> None:
    published = writer.orc.bus.publish(_note(provenance=[SYSTEM, INPUT]))

    received = writer.next()

    assert received.id == published.message_id
    assert received.provenance == (SYSTEM, INPUT)
    with session_scope(writer.orc.database_url) as session:
        row = session.get(MessageRow, published.message_id)
        assert row is not None
        assert row.payload["provenance_signature"] == received.provenance_signature
        assert KEY not in json.dumps(row.payload)


def test_a_large_payload_loaded_from_postgresql_keeps_the_trust_signed_for_it(
    writer: Writer,
) -> None:
    chapter = {"text": "x" * 20_000, "ratio": 1e16, "note": "naïve ☃"}

    published = writer.orc.bus.publish(_note(provenance=[SYSTEM], payload=chapter))
    received = writer.next()

    assert published.by_reference
    assert received.payload == chapter and received.trust == "trusted"


def test_a_message_whose_trust_was_raised_on_the_broker_arrives_untrusted(
    writer: Writer,
) -> None:
    signed = writer.orc.bus.signed(_note(provenance=[SYSTEM, INPUT]))
    data = signed.encode()
    data["provenance"][1]["trust"] = "trusted"  # someone with access to Redis
    forged = AgentMessage.decode(data)

    writer.orc.bus.send_copy(forged, "writer")
    received = writer.next()

    assert received.id == forged.id
    assert received.provenance == (Provenance(SYSTEM.source), INPUT)
    assert received.trust == "untrusted"


def test_a_message_from_a_process_without_the_key_arrives_untrusted(
    writer: Writer, server_settings: Settings
) -> None:
    keyless = _team(server_settings)
    try:
        published = keyless.bus.publish(_note(provenance=[SYSTEM]))
    finally:
        keyless.close()

    received = writer.next()

    assert received.id == published.message_id
    assert received.provenance_signature is None
    assert received.provenance == (Provenance(SYSTEM.source, "untrusted"),)
