"""Publishing: the message goes into the audit table first, then onto each recipient's queue.

``publish`` is what users call (``orc.bus.publish``): it resolves a broadcast to the subscribers
of the message's type, starts waiting for the acknowledgements the message asks for, records
it, then routes it; a broker that does not take a message that asks for no acknowledgement is
an error the caller sees (nothing else would send it again). The coordinator and the agents use
``record`` and ``route`` directly: ``record`` adds the audit row to the caller's transaction (so a
step's result and the request it leads to commit together), ``route`` hands recorded messages to
the broker after that commit. Both ways take the same two steps, in the same order.

A crash between the two leaves a recorded message that no queue holds. A step's request is not
re-sent from this table: the maintenance sweep reconciles from the workflow and step rows, which
say what must happen next. A message that asks for an acknowledgement is published again by the
acknowledgement sweeper (``bus.ack_sweeper``) when none comes. Consumers are idempotent, so a
duplicate is harmless and a loss is not possible.

The broker's copy of a message whose payload is larger than ``inline_payload_bytes`` carries no
payload, only ``payload_ref``: the consumer loads the payload from the audit row.

A message's provenance (``AgentMessage.provenance``) is signed in ``publish``, before the audit
row is written, when it claims trusted text: one HMAC over the message's id, its sender and
payload, and all its pieces, with ``provenance_key`` (``AGENTYARD_PROVENANCE_KEY``). A bus with
no key cannot vouch for anything: such a claim is sent unsigned, and receivers read it as
untrusted. ``checked`` is the receiving side: trusted pieces whose signature does not check out
are read as untrusted. ``record`` and ``route`` send a message as given (the coordinator's own
messages carry no provenance); a caller of those that has trusted text to vouch for passes the
message through ``signed`` first.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from celery import Celery
from kombu.exceptions import BatchPublishError
from pydantic import SecretStr

from bus.brokers import broker_for
from bus.envelope import AgentMessage, MessageType
from bus.provenance import checked_all, sign_all
from bus.routing import Route, route_for
from storage import statements
from storage.ack_store import ACKED_KEPT_S, Acked, AckStore, Begun
from storage.errors import BrokerUnavailable, ConfigurationError, InvalidRequest, MessageNotFound
from storage.executor import Tx, transaction
from storage.models import utcnow
from storage.subscription_store import SubscriptionStore

log = structlog.get_logger(__name__)

NO_REDIS = (
    "{what} needs the shared Redis: set AGENTYARD_REDIS_URL (every producer and worker must "
    "use the same one)"
)


# Redis remembers an acknowledgement this long (less a margin for clocks); a copy of a message
# older than that is checked against PostgreSQL's record instead.
REDIS_REMEMBERS = timedelta(seconds=ACKED_KEPT_S - 600)


def task_id_for(message: AgentMessage, recipient: str) -> str:
    """The Celery task id of ``message``'s copy for ``recipient``: the broker's view keys on it."""
    return message.id if len(message.to) == 1 else f"{message.id}:{recipient}"


def payload_size(message: AgentMessage) -> int:
    """Bytes of the payload as JSON on the wire."""
    if not message.payload:
        return 0
    return len(json.dumps(message.payload, separators=(",", ":")).encode())


@dataclass(frozen=True, slots=True)
class Unsent:
    """A recorded message the broker did not take, and why."""

    message_id: str
    error: str


@dataclass(frozen=True, slots=True)
class Published:
    """What ``publish`` did: the message's id, who it went to, whether its payload stayed in
    PostgreSQL (the broker carried a reference)."""

    message_id: str
    recipients: tuple[str, ...]
    by_reference: bool


class Bus:
    def __init__(
        self,
        app: Celery,
        database_url: str,
        *,
        subscriptions: SubscriptionStore | None = None,
        acks: AckStore | None = None,
        inline_payload_bytes: int = 16_384,
        is_recipient: Callable[[str], bool] | None = None,
        trace_headers: Callable[[str | None], dict[str, str]] | None = None,
        provenance_key: SecretStr | None = None,
    ) -> None:
        """``subscriptions`` and ``acks`` live in the shared Redis (None: broadcast and
        acknowledgements are refused with a message that says so); ``is_recipient`` tells a known
        agent id from a typo (None: every name is accepted); ``trace_headers`` gives the trace
        context a message about a run (or about none) carries in its headers;
        ``provenance_key`` signs and checks messages' provenance (None: claims of trusted text
        are sent unsigned and read as untrusted)."""
        self._app = app
        # Priorities as the broker reads them (Redis serves 0 first, RabbitMQ 9).
        self._wire_priority = broker_for(app.conf.broker_url if app else None).wire_priority
        self._sending = threading.local()  # the producer a batch of copies goes through
        self._database_url = database_url
        self._subscriptions = subscriptions
        self._acks = acks
        self._inline_payload_bytes = inline_payload_bytes
        self._is_recipient = is_recipient
        self._trace_headers = trace_headers
        self._provenance_key = provenance_key
        self._warned_unsigned = False

    # -- publishing ----------------------------------------------------------------------------

    def publish(self, message: AgentMessage | Mapping[str, Any]) -> Published:
        """Validate ``message`` (an ``AgentMessage`` or the fields of one), record it, then route
        it to each recipient's queue. A broadcast (``to="*"``) goes to every agent subscribed to
        its type except its sender; with no subscriber it is recorded and goes nowhere."""
        resolved = self.signed(self._resolve(_as_message(message)))
        if resolved.requires_ack and resolved.to:
            # Waiting starts before the message can reach anyone: an acknowledgement never
            # arrives for something not yet awaited.
            self._ack_store("a message that requires an acknowledgement").expect(
                resolved.id, resolved.to, resolved.attempt, resolved.ack_timeout_s
            )
        with transaction(self._database_url) as tx:
            self.record(tx, resolved)
        try:
            self._send(resolved)
        except Exception as exc:  # any broker failure
            if not resolved.requires_ack:
                raise BrokerUnavailable(
                    f"message {resolved.id!r} is on record but the broker did not take it "
                    f"({type(exc).__name__}: {exc}); check AGENTYARD_REDIS_URL and publish it "
                    "again (a new message; consumers see the id)"
                ) from exc
            log.warning(
                "bus.route_failed",
                message_id=resolved.id,
                error=str(exc),
                next=f"published again in {resolved.ack_timeout_s}s unless acknowledged",
            )
        if not resolved.to:
            log.warning("bus.no_subscribers", message_id=resolved.id, type=resolved.type.value)
        return Published(
            resolved.id, resolved.to, payload_size(resolved) > self._inline_payload_bytes
        )

    # -- provenance ----------------------------------------------------------------------------

    def signed(self, message: AgentMessage) -> AgentMessage:
        """``message`` as this bus vouches for it: a claim of trusted text signed with the key
        (any signature it came with replaced); without a key, or with nothing trusted to vouch
        for, no signature."""
        key = self._key()
        vouched = any(piece.trusted for piece in message.provenance)
        signature = None
        if vouched and key is not None:
            signature = sign_all(message.provenance, message.id, key, content=_signed(message))
        elif vouched and not self._warned_unsigned:
            self._warned_unsigned = True
            log.warning(
                "bus.provenance_unsigned",
                message_id=message.id,
                reason="no AGENTYARD_PROVENANCE_KEY to sign with",
                next="receivers read its trusted pieces as untrusted (said once per process)",
            )
        if signature == message.provenance_signature:
            return message
        return message.model_copy(update={"provenance_signature": signature})

    def checked(self, message: AgentMessage) -> AgentMessage:
        """``message`` (its payload loaded: see ``stored_payload``) with its provenance as far as
        its signature vouches for it: trusted pieces whose signature does not check out with
        this bus's key are read as untrusted, and a warning says which and why."""
        if not any(piece.trusted for piece in message.provenance):
            return message
        key = self._key()
        pieces = checked_all(
            message.provenance,
            message.id,
            message.provenance_signature,
            key,
            content=_signed(message),
        )
        if pieces == message.provenance:
            return message
        log.warning(
            "bus.provenance_downgraded",
            message_id=message.id,
            sender=message.sender,
            sources=[p.source for p, q in zip(message.provenance, pieces, strict=True) if p != q],
            reason=(
                "no AGENTYARD_PROVENANCE_KEY here to check it with"
                if key is None
                else "unsigned: its publisher had no AGENTYARD_PROVENANCE_KEY"
                if message.provenance_signature is None
                else "the signature does not check out: forged, edited on the way, or signed "
                "with another key"
            ),
            read_as="untrusted",
        )
        return message.model_copy(update={"provenance": pieces})

    def _key(self) -> bytes | None:
        key = self._provenance_key
        return None if key is None else key.get_secret_value().encode()

    def record_and_route(self, message: AgentMessage) -> None:
        """Record one message on its own, then route it; a broker failure is logged (the
        maintenance sweep's own messages: the next sweep sends them again)."""
        with transaction(self._database_url) as tx:
            self.record(tx, message)
        self.route([message])

    def record(self, tx: Tx, message: AgentMessage, delivered_at: datetime | None = None) -> None:
        """Add ``message`` to the audit table inside the caller's transaction (``delivered_at``
        for a message its consumer acts on in that same transaction)."""
        record(tx, message, delivered_at)

    def route(self, messages: Iterable[AgentMessage]) -> list[Unsent]:
        """Send already-recorded messages to their queues. A broker failure is logged, not
        raised: the work is on record, and a sweep picks it up. Returns what was not sent, for a
        caller that must say so. Several messages (a fan-out's branches) go through one broker
        producer, as a Celery group's tasks do."""
        unsent = []
        batch = list(messages)
        with self._one_producer(len(batch) > 1):
            for message in batch:
                try:
                    self._send(message)
                except Exception as exc:  # any broker failure: the sweep recovers the work
                    log.warning(
                        "bus.route_failed",
                        message_id=message.id,
                        error=str(exc),
                        next="a sweep reconciles it",
                    )
                    unsent.append(Unsent(message.id, f"{type(exc).__name__}: {exc}"))
        return unsent

    @contextlib.contextmanager
    def batched(self) -> Iterator[None]:
        """While the block runs, every message this thread routes goes through one broker
        producer, and its broker commands wait, to be sent together (a Redis pipeline, a
        thousand commands a round trip) as the block ends: ``orc.submit_many``'s first
        requests. ``BrokerUnavailable`` if they could not all be sent: which of them reached
        the broker is then unknown, and the sweep sends again whatever is not queued."""
        with self._one_producer(True):
            producer = getattr(self._sending, "producer", None)
            if producer is None or not hasattr(producer, "batch"):
                yield  # no broker here, or one that sends each at once
                return
            try:
                with producer.batch():
                    yield
            except BatchPublishError as exc:
                raise BrokerUnavailable(
                    f"the broker did not take a batch of messages ({exc.__cause__ or exc}); "
                    "which of them reached it is unknown: they are on record, and a "
                    "coordinator's sweep sends again those that are not queued"
                ) from exc

    @contextlib.contextmanager
    def _one_producer(self, wanted: bool) -> Iterator[None]:
        """While the block runs, this thread's copies go through one producer (one connection
        taken from the pool once, not once per copy). One that cannot be had is no error here:
        each send then tries on its own, and what fails is unsent."""
        if not wanted or self._app is None or getattr(self._sending, "producer", None):
            yield
            return
        with contextlib.ExitStack() as held:
            try:
                producer = held.enter_context(self._app.producer_or_acquire())
            except Exception:  # the broker is away: each send says so for itself
                producer = None
            self._sending.producer = producer
            try:
                yield
            finally:
                self._sending.producer = None

    def publish_again(
        self, message: AgentMessage, recipient: str, attempt: int, priority: int
    ) -> bool:
        """Publish ``message`` (as recorded) again to one recipient, as ``attempt`` at
        ``priority``: the audit row keeps the highest of each, and a message that asks for an
        acknowledgement is awaited again. False, and nothing sent, if the recipient acknowledged
        it meanwhile. A broker failure is logged: the entry's new deadline brings it back."""
        again = message.model_copy(update={"attempt": attempt, "priority": priority})
        with transaction(self._database_url) as tx:
            tx.run(
                statements.MESSAGE_REPUBLISHED,
                {"w_id": message.id, "attempt": attempt, "priority": priority},
            )
        if message.requires_ack:
            awaited = self._ack_store("publishing again").expect(
                message.id, (recipient,), attempt, message.ack_timeout_s
            )
            if not awaited:
                return False
        try:
            self.send_copy(again, recipient)
        except Exception as exc:  # the entry waits with its new deadline: a sweep sends it again
            log.warning("bus.route_failed", message_id=message.id, error=str(exc))
        return True

    def send_copy(self, message: AgentMessage, recipient: str) -> None:
        """Put ``message``'s copy for one recipient on its queue (raises if the broker fails)."""
        wire = self.on_the_wire(message)
        route = route_for(recipient)
        self._app.send_task(
            route.task,
            producer=getattr(self._sending, "producer", None),
            kwargs={"envelope": wire.encode()},
            queue=route.queue,
            priority=self._wire_priority(message.priority),
            task_id=task_id_for(message, recipient),
            headers=self.headers_for(message),
            argsrepr="()",
            # What Flower and `celery inspect` show of the task: ids, never a payload or a key.
            kwargsrepr=repr(
                {"message": message.id, "workflow": message.workflow_id, "step": message.step_id}
            ),
        )

    def headers_for(self, message: AgentMessage) -> dict[str, str]:
        """The headers a copy of ``message`` travels with: its trace context."""
        return self._trace_headers(message.workflow_id) if self._trace_headers else {}

    def on_the_wire(self, message: AgentMessage) -> AgentMessage:
        """The broker's copy: ``message`` itself, or without its payload when that is large."""
        if message.payload_ref is None and payload_size(message) > self._inline_payload_bytes:
            return message.model_copy(update={"payload": {}, "payload_ref": message.id})
        return message

    def _send(self, message: AgentMessage) -> None:
        for recipient in message.to:
            self.send_copy(message, recipient)

    def _resolve(self, message: AgentMessage) -> AgentMessage:
        """The message with its recipients named: a broadcast becomes its type's subscribers.
        A sender or recipient that is not a registered agent is refused."""
        if self._is_recipient is not None and not self._is_recipient(message.sender):
            raise InvalidRequest(
                f"not a valid agentyard message: sender: no agent {message.sender!r} is "
                "registered with this orchestrator, and only its agents send on its bus "
                "(check the id, or register the agent)"
            )
        if message.broadcast:
            store = self._subscription_store("a broadcast")
            subscribers = tuple(s for s in store.subscribers(message.type) if s != message.sender)
            return message.model_copy(update={"to": subscribers})
        if self._is_recipient is not None:
            unknown = [r for r in message.to if not self._is_recipient(r)]
            if unknown:
                raise InvalidRequest(
                    f"not a valid agentyard message: to: no agent {unknown[0]!r} is registered "
                    "with this orchestrator (check the id, or register the agent)"
                )
        return message

    # -- subscriptions ---------------------------------------------------------------------------

    def subscribe(self, agent_id: str, types: Iterable[MessageType | str]) -> None:
        """Have ``agent_id`` receive every broadcast message of ``types``."""
        store = self._subscription_store("subscribing")
        store.subscribe(self._known(agent_id), _types(types))

    def unsubscribe(self, agent_id: str, types: Iterable[MessageType | str]) -> None:
        self._subscription_store("unsubscribing").unsubscribe(agent_id, _types(types))

    def subscribers(self, message_type: MessageType | str) -> tuple[str, ...]:
        return self._subscription_store("listing subscribers").subscribers(
            _types([message_type])[0]
        )

    # -- acknowledgements --------------------------------------------------------------------------

    def acknowledge(self, message_id: str, agent_id: str) -> Acked:
        """``agent_id`` has processed ``message_id``: stop waiting for it, and never hand a copy
        of it to that agent again. Recorded in Redis and in PostgreSQL; acknowledging twice is
        harmless."""
        with transaction(self._database_url) as tx:
            row = tx.run(statements.MESSAGE_FOR_ACK, {"w_id": message_id}).one_or_none()
            if row is None:
                raise MessageNotFound(f"no message {message_id!r} was published on this bus")
            if agent_id not in row.recipients:
                raise MessageNotFound(
                    f"message {message_id!r} was not sent to {agent_id!r}; it went to "
                    f"{', '.join(row.recipients) or 'nobody'}"
                )
            return self._acknowledge(tx, message_id, agent_id, row.attempt)

    def handled(self, message: AgentMessage, agent_id: str, *, acknowledge: bool) -> None:
        """``agent_id``'s handler is done with ``message``: stamp it delivered and, if asked,
        acknowledge it, in one transaction (the inbox's path: the recipient is known good)."""
        with transaction(self._database_url) as tx:
            tx.run(statements.MARK_DELIVERED, {"w_id": message.id, "delivered_at": utcnow()})
            if acknowledge:
                self._acknowledge(tx, message.id, agent_id, message.attempt)

    def _acknowledge(self, tx: Tx, message_id: str, agent_id: str, attempt: int) -> Acked:
        outcome = Acked.NOT_AWAITED
        if self._acks is not None:
            done = self._acks.acknowledge(message_id, agent_id)
            outcome, attempt = done.outcome, done.attempt or attempt
        tx.run(
            statements.insert_ack_once(self._database_url),
            {
                "message_id": message_id,
                "recipient": agent_id,
                "attempt": attempt,
                "acked_at": utcnow(),
            },
        )
        log.info("bus.acknowledged", message_id=message_id, agent_id=agent_id, outcome=outcome)
        return outcome

    def begin(self, message: AgentMessage, agent_id: str) -> Begun:
        """A delivery of a message that asks for an acknowledgement starts: whether it may
        process it (``NOW``), or not (``ACKNOWLEDGED``, ``IN_PROGRESS``); see ``AckStore.begin``."""
        if self._acks is None:
            return Begun.ACKNOWLEDGED if self._acked_on_record(message.id, agent_id) else Begun.NOW
        begun = self._acks.begin(message.id, agent_id, message.ack_timeout_s)
        if begun in (Begun.ACKNOWLEDGED, Begun.IN_PROGRESS):
            return begun
        if begun is Begun.NOW and utcnow() - message.timestamp < REDIS_REMEMBERS:
            return Begun.NOW
        # Redis lost its data since the acknowledgements were loaded, or no longer remembers
        # acknowledgements this old: PostgreSQL has the last word.
        if self._acked_on_record(message.id, agent_id):
            self._acks.release(message.id, agent_id)
            return Begun.ACKNOWLEDGED
        return Begun.NOW

    def release(self, message: AgentMessage, agent_id: str) -> None:
        """The delivery that began failed: let another copy be processed."""
        if self._acks is not None:
            self._acks.release(message.id, agent_id)

    def is_acknowledged(self, message_id: str, agent_id: str) -> bool:
        if self._acks is not None and self._acks.is_acknowledged(message_id, agent_id):
            return True
        return self._acked_on_record(message_id, agent_id)

    def _acked_on_record(self, message_id: str, agent_id: str) -> bool:
        with transaction(self._database_url) as tx:
            found = tx.run(statements.ACK_OF, {"w_id": message_id, "w_recipient": agent_id})
            return found.one_or_none() is not None

    def stored_payload(self, message: AgentMessage) -> AgentMessage:
        """The message with the payload its audit row holds (for a copy that carried a
        reference)."""
        if message.payload_ref is None:
            return message
        with transaction(self._database_url) as tx:
            row = tx.run(statements.MESSAGE_ENVELOPE, {"w_id": message.payload_ref}).one_or_none()
        if row is None:
            raise MessageNotFound(
                f"message {message.id!r} refers to a payload on message {message.payload_ref!r}, "
                "which is not in the audit table"
            )
        return message.model_copy(update={"payload": row.payload["payload"], "payload_ref": None})

    @property
    def acks(self) -> AckStore | None:
        return self._acks

    def _ack_store(self, what: str) -> AckStore:
        if self._acks is None:
            raise ConfigurationError(NO_REDIS.format(what=what))
        return self._acks

    def _subscription_store(self, what: str) -> SubscriptionStore:
        if self._subscriptions is None:
            raise ConfigurationError(NO_REDIS.format(what=what))
        return self._subscriptions

    def _known(self, agent_id: str) -> str:
        if self._is_recipient is not None and not self._is_recipient(agent_id):
            raise InvalidRequest(f"no agent {agent_id!r} is registered with this orchestrator")
        return agent_id


def record(tx: Tx, message: AgentMessage, delivered_at: datetime | None = None) -> None:
    """Add ``message`` to the audit table inside the caller's transaction (``Bus.record``; also
    for whoever records a message it never routes, and needs no broker for that)."""
    first = route_for(message.to[0]) if message.to else Route("", "")
    tx.run(
        statements.INSERT_MESSAGE,
        dict(
            id=message.id,
            workflow_id=message.workflow_id,
            step_id=message.step_id,
            type=message.type.value,
            sender=message.sender,
            recipients=list(message.to),
            task=first.task,
            queue=first.queue,
            priority=message.priority,
            payload=message.encode(),
            created_at=message.timestamp,
            delivered_at=delivered_at,
            attempt=message.attempt,
            requires_ack=message.requires_ack,
            ack_timeout_s=message.ack_timeout_s if message.requires_ack else None,
        ),
    )


def _as_message(message: AgentMessage | Mapping[str, Any]) -> AgentMessage:
    if isinstance(message, AgentMessage):
        return message
    if isinstance(message, Mapping):
        return AgentMessage(**dict(message))
    raise InvalidRequest(
        f"publish takes an AgentMessage or a dict of its fields, not {type(message).__name__}"
    )


def _signed(message: AgentMessage) -> dict[str, Any]:
    """What a message's provenance signature covers besides its id and its pieces."""
    return {"sender": message.sender, "payload": message.payload}


def _types(types: Iterable[MessageType | str]) -> list[str]:
    chosen = [types] if isinstance(types, str) else list(types)
    try:
        return [MessageType(t).value for t in chosen]
    except ValueError:
        known = ", ".join(t.value for t in MessageType)
        raise InvalidRequest(f"message types are {known}; got {chosen!r}") from None
