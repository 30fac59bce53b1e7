"""``AgentMessage``: the one envelope every message on the bus travels in.

Messages carry ids, never prompts: a request names the step and attempt, the worker loads the rest
from the database. That keeps payloads small, and Flower free of prompts and keys. One encode, one
decode; JSON only. A message that does not validate cannot be built (``InvalidRequest`` says
which field and why), so it is refused before anything is published.

``to`` names one or more agents (or the coordinator), or ``BROADCAST`` alone: every agent
subscribed to the message's type, resolved when it is published. ``requires_ack`` asks each
recipient to acknowledge within ``ack_timeout_s``; otherwise the bus publishes the message again
as ``attempt`` + 1. ``payload_ref`` is set on the broker's copy of a large message: the payload
stays in PostgreSQL and the consumer loads it from there.

``provenance`` names the origins of the text the payload carries (``bus.provenance``), each
``{"source": ..., "trust": ...}``; empty, the message says nothing of them, and ``trust`` reads it
as untrusted. A claim of trusted text holds only with ``provenance_signature``: the bus signs it
at publish with ``AGENTYARD_PROVENANCE_KEY`` and checks it on receipt, so a handler sees trusted
pieces only where a holder of the key vouched for them on this very message.
"""

from __future__ import annotations

import json
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from bus.priorities import DEFAULT, check
from bus.provenance import Provenance, Trust, derived
from storage.errors import InvalidRequest
from storage.models import new_id, utcnow

COORDINATOR = "coordinator"
# The people who decide approvals: the messages between them and the coordinator are on the
# audit trail and go to no queue (no agent id starts with "@")
APPROVERS = "@approvers"
BROADCAST = "*"  # `to` every agent subscribed to the message's type
MAX_SOURCE = 500  # characters of a provenance piece's source


class MessageType(StrEnum):
    REQUEST = "request"
    RESPONSE = "response"
    NOTIFICATION = "notification"
    QUERY = "query"


class AgentMessage(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(default_factory=new_id)
    type: MessageType
    sender: str = Field(min_length=1, max_length=200)
    to: tuple[str, ...] = Field(min_length=1)
    payload: dict[str, Any] = Field(default_factory=dict)
    workflow_id: str | None = None
    step_id: str | None = None
    priority: int = DEFAULT
    attempt: int = Field(default=1, ge=1)
    timestamp: datetime = Field(default_factory=utcnow)
    requires_ack: bool = False
    ack_timeout_s: float = Field(default=30.0, gt=0, le=86_400)
    payload_ref: str | None = None  # the payload is in PostgreSQL, on this message's audit row
    provenance: tuple[Provenance, ...] = ()  # where the payload's text came from
    provenance_signature: str | None = Field(default=None, max_length=128)  # HMAC, hex

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise InvalidRequest(f"not a valid agentyard message: {_reasons(exc)}") from None

    @field_validator("priority")
    @classmethod
    def _priority_in_range(cls, value: int) -> int:
        return check(value)

    @field_validator("to", mode="before")
    @classmethod
    def _one_recipient_alone(cls, value: Any) -> Any:
        return (value,) if isinstance(value, str) else value

    @field_validator("to")
    @classmethod
    def _recipients(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if any(not r for r in value):
            raise ValueError("a recipient is empty")
        if len(set(value)) != len(value):
            raise ValueError(f"a recipient is named twice in {list(value)}")
        if BROADCAST in value and len(value) > 1:
            raise ValueError(f"{BROADCAST!r} (every subscriber) stands alone")
        return value

    @field_validator("payload")
    @classmethod
    def _json_payload(cls, value: dict[str, Any]) -> dict[str, Any]:
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"the payload is not plain JSON ({exc})") from None
        return value

    @field_validator("provenance")
    @classmethod
    def _sources(cls, value: tuple[Provenance, ...]) -> tuple[Provenance, ...]:
        if any(not piece.source or len(piece.source) > MAX_SOURCE for piece in value):
            raise ValueError(f"each piece names its source in 1 to {MAX_SOURCE} characters")
        return value

    @property
    def broadcast(self) -> bool:
        return self.to == (BROADCAST,)

    @property
    def trust(self) -> Trust:
        """The trust of the text the payload carries: trusted only if the provenance names its
        pieces and every one is trusted (on a received message, as far as its signature
        vouched); a message that says nothing of its origins is untrusted."""
        return derived(self.provenance) if self.provenance else "untrusted"

    def encode(self) -> dict[str, Any]:
        """The message as JSON data. A message that says nothing of its provenance leaves those
        fields out: a worker of an earlier version (during a rolling deploy) still reads it."""
        data = self.model_dump(mode="json")
        if not self.provenance and self.provenance_signature is None:
            del data["provenance"], data["provenance_signature"]
        return data

    @classmethod
    def decode(cls, data: Any) -> AgentMessage:
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise InvalidRequest(f"not an agentyard message: {_reasons(exc)}") from None


def _reasons(exc: ValidationError) -> str:
    """What pydantic found wrong, one field at a time: ``priority: ...; to: ...``."""
    return "; ".join(
        f"{'.'.join(str(p) for p in error['loc']) or 'message'}: "
        f"{error['msg'].removeprefix('Value error, ')}"
        for error in exc.errors()
    )


APPROVE_UNTRUSTED_SIDE_EFFECTS = "approve_untrusted_side_effects"  # a step request's flag


def request_step(
    *,
    agent_id: str,
    workflow_id: str,
    step_id: str,
    attempt: int,
    priority: int,
    workflow: str,
    budget_micro: int | None = None,
    approve_untrusted_side_effects: bool = False,
) -> AgentMessage:
    """The coordinator asks an agent to run one attempt of one step of a run of ``workflow``
    (whose budget, if it has one, the agent's call is held against; which says, with
    ``approve_untrusted_side_effects``, that a call of a tool with side effects from a context
    that holds untrusted text waits for a person's approval)."""
    payload: dict[str, Any] = {
        "step_id": step_id,
        "attempt": attempt,
        "workflow": workflow,
        "budget_micro": budget_micro,
    }
    if approve_untrusted_side_effects:  # said only when it is so: most runs carry nothing more
        payload[APPROVE_UNTRUSTED_SIDE_EFFECTS] = True
    return AgentMessage(
        type=MessageType.REQUEST,
        sender=COORDINATOR,
        to=(agent_id,),
        workflow_id=workflow_id,
        step_id=step_id,
        priority=priority,
        attempt=attempt,
        payload=payload,
    )


def is_step_request(message: AgentMessage) -> bool:
    """Whether ``message`` is the coordinator asking an agent to run a step (``request_step``);
    every other message to an agent goes to the agent's bus handler."""
    return (
        message.type is MessageType.REQUEST
        and message.sender == COORDINATOR
        and "step_id" in message.payload
    )


def step_response(
    *,
    agent_id: str,
    workflow_id: str,
    step_id: str,
    attempt: int,
    priority: int,
    outcome: str,
    cost_micro: int,
) -> AgentMessage:
    """An agent's answer to a step request: how the attempt ended (the output is on the step
    row). The coordinator's decision is made in the transaction that records it."""
    return AgentMessage(
        type=MessageType.RESPONSE,
        sender=agent_id,
        to=(COORDINATOR,),
        workflow_id=workflow_id,
        step_id=step_id,
        priority=priority,
        attempt=attempt,
        payload={
            "step_id": step_id,
            "attempt": attempt,
            "outcome": outcome,
            "cost_micro": cost_micro,
        },
    )


def advance(
    *, sender: str, workflow_id: str, priority: int, step_id: str | None = None
) -> AgentMessage:
    """Ask the coordinator to look at a workflow again (a step finished, a retry is due...)."""
    return AgentMessage(
        type=MessageType.NOTIFICATION,
        sender=sender,
        to=(COORDINATOR,),
        workflow_id=workflow_id,
        step_id=step_id,
        priority=priority,
        payload={"workflow_id": workflow_id},
    )
