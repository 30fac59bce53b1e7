"""``AgentMessage``: the one envelope every message on the bus travels in.

Messages carry ids, never prompts: a request names the step and attempt, the worker loads the rest
from the database. That keeps payloads small, and Flower free of prompts and keys. One encode, one
decode; JSON only.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from bus.priorities import DEFAULT, check
from storage.errors import InvalidRequest
from storage.models import new_id, utcnow

COORDINATOR = "coordinator"


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

    @field_validator("priority")
    @classmethod
    def _priority_in_range(cls, value: int) -> int:
        return check(value)

    def encode(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    @classmethod
    def decode(cls, data: Any) -> AgentMessage:
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise InvalidRequest(f"not an agentyard message: {exc}") from None


def request_step(
    *,
    agent_id: str,
    workflow_id: str,
    step_id: str,
    attempt: int,
    priority: int,
    workflow: str,
    budget_micro: int | None = None,
) -> AgentMessage:
    """The coordinator asks an agent to run one attempt of one step of a run of ``workflow``
    (whose budget, if it has one, the agent's call is held against)."""
    return AgentMessage(
        type=MessageType.REQUEST,
        sender=COORDINATOR,
        to=(agent_id,),
        workflow_id=workflow_id,
        step_id=step_id,
        priority=priority,
        attempt=attempt,
        payload={
            "step_id": step_id,
            "attempt": attempt,
            "workflow": workflow,
            "budget_micro": budget_micro,
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
