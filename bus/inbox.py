"""The receiving end of the bus: hands each agent the messages published to it.

An agent's task receives two kinds of message: the coordinator's step requests (run by the
step runner) and everything else published on the bus, which goes to the handler the team
registered for that agent (``orc.on_message(agent_id)``). For each delivery, in order:

1. for a message that asks for an acknowledgement, the delivery takes a processing lease for
   ``ack_timeout_s`` (``AckStore.begin``): a copy of a message the agent has acknowledged already
   is skipped (published again because the acknowledgement came late, it is not processed
   twice), and so is a copy that arrives while another delivery is processing the message;
2. a payload left in PostgreSQL (``payload_ref``) is loaded;
3. its provenance is checked (``Bus.checked``): a claim of trusted text whose signature does not
   check out with ``AGENTYARD_PROVENANCE_KEY`` (forged, edited on the way, or never signed) is
   read as untrusted, so the handler sees trust only where the key vouched for it;
4. the handler runs; a message for an agent with no handler is dead-lettered with the reason;
5. the message is stamped delivered, and acknowledged if it asked for that and the handler
   leaves acknowledging to the bus (``auto_ack``).

A handler that raises does not acknowledge: a message that asked for an acknowledgement is
published again when its ``ack_timeout_s`` runs out (and dead-lettered after the last attempt);
any other is dead-lettered at once with the error. Delivery is at least once: a handler that
outlives ``ack_timeout_s`` may see the next copy while it still runs, and a message that asks
for no acknowledgement comes back from the broker if its worker dies. Handlers should be
idempotent.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum

import structlog

from bus.dead_letters import DeadLetters
from bus.envelope import AgentMessage
from bus.publisher import Bus
from bus.routing import route_for
from storage.ack_store import Begun
from storage.errors import AgentyardError

log = structlog.get_logger(__name__)

MessageHandler = Callable[[AgentMessage], None]


class Delivery(StrEnum):
    HANDLED = "handled"
    ALREADY_ACKNOWLEDGED = "already acknowledged"
    IN_PROGRESS_ELSEWHERE = "another delivery is processing it"
    FAILED = "handler failed, awaiting the next attempt"
    DEAD_LETTERED = "dead-lettered"


@dataclass(frozen=True, slots=True)
class Registration:
    """An agent's handler of bus messages. With ``auto_ack`` the bus acknowledges each message
    the handler returned from; without, the handler calls ``orc.bus.acknowledge`` itself when
    its work is done."""

    handler: MessageHandler
    auto_ack: bool = True


class Inbox:
    def __init__(
        self, bus: Bus, dead_letters: DeadLetters, handlers: Mapping[str, Registration]
    ) -> None:
        """``handlers`` by agent id (read at each delivery: handlers registered later count)."""
        self._bus = bus
        self._dead_letters = dead_letters
        self._handlers = handlers

    def deliver(self, recipient: str, message: AgentMessage) -> Delivery:
        with structlog.contextvars.bound_contextvars(
            message_id=message.id,
            agent_id=recipient,
            message_type=message.type.value,
            attempt=message.attempt,
            workflow_id=message.workflow_id,
        ):
            return self._deliver(recipient, message)

    def _deliver(self, recipient: str, message: AgentMessage) -> Delivery:
        if message.requires_ack:
            begun = self._bus.begin(message, recipient)
            if begun is not Begun.NOW:
                log.info("bus.delivery_skipped", reason=begun.value)
                if begun is Begun.ACKNOWLEDGED:
                    return Delivery.ALREADY_ACKNOWLEDGED
                return Delivery.IN_PROGRESS_ELSEWHERE
        registration = self._handlers.get(recipient)
        if registration is None:
            return self._dead_letter(
                recipient,
                message,
                f"agent {recipient!r} has no handler for bus messages; register one with "
                f"orc.on_message({recipient!r})",
            )
        try:
            message = self._bus.stored_payload(message)
        except AgentyardError as exc:
            return self._dead_letter(recipient, message, str(exc))
        message = self._bus.checked(message)  # the signature covers the payload: loaded first
        try:
            registration.handler(message)
        except Exception as exc:  # a handler's failure must not take the worker down
            if message.requires_ack:
                self._bus.release(message, recipient)
                log.warning(
                    "bus.handler_failed",
                    error=f"{type(exc).__name__}: {exc}",
                    next=f"published again in {message.ack_timeout_s}s unless acknowledged",
                )
                return Delivery.FAILED
            reason = f"the handler of {recipient!r} raised {type(exc).__name__}: {exc}"
            return self._dead_letter(recipient, message, reason)
        self._bus.handled(
            message, recipient, acknowledge=message.requires_ack and registration.auto_ack
        )
        log.info("bus.delivered")
        return Delivery.HANDLED

    def _dead_letter(self, recipient: str, message: AgentMessage, reason: str) -> Delivery:
        route = route_for(recipient)
        if message.requires_ack and self._bus.acks is not None:
            self._bus.acks.give_up(message.id, recipient)  # or the sweeper would send it again
        self._dead_letters.record(
            task=route.task,
            queue=route.queue,
            reason=reason,
            body=message.model_dump_json(),
            message_id=message.id,
            recipient=recipient,
        )
        return Delivery.DEAD_LETTERED
