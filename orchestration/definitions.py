"""What a team is made of: agents and the workflows that use them.

Both are frozen, validated values: a definition that cannot run is refused when it is made or
registered, never halfway through a workflow.
"""

from __future__ import annotations

import re
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator

_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


def _check_id(kind: str, value: str) -> str:
    if not _ID.match(value):
        raise ValueError(
            f"{kind} id {value!r} must be 1-63 lower-case letters, digits, '-' or '_' "
            "(it names a queue)"
        )
    return value


class Agent(BaseModel):
    """One kind of worker: a model, a system prompt, and the limits it runs under."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    model: str = Field(min_length=1)
    system_prompt: str = ""
    max_tokens: int = Field(default=1024, ge=1, le=128_000)
    max_retries: int = Field(default=3, ge=0, le=20)
    timeout_s: float = Field(default=60.0, gt=0, le=3600)
    cost_limit_usd: float | None = Field(default=None, gt=0)
    fallback: str | None = None
    # The agent's circuit breaker: this many provider failures within the window open it; it
    # stays open this long, then lets one probe call through.
    breaker_threshold: int = Field(default=5, ge=1)
    breaker_window_s: float = Field(default=60.0, gt=0)
    breaker_reset_s: float = Field(default=30.0, gt=0)

    @field_validator("id")
    @classmethod
    def _valid_id(cls, value: str) -> str:
        return _check_id("agent", value)

    @property
    def queue(self) -> str:
        return f"agent.{self.id}"


class WorkflowKind(StrEnum):
    SEQUENCE = "sequence"


class Workflow(BaseModel):
    """A named plan over agents. Sequences for now: each step gets the previous one's output."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    kind: WorkflowKind = WorkflowKind.SEQUENCE
    steps: tuple[str, ...] = Field(min_length=1, max_length=200)
    budget_usd: float | None = Field(default=None, gt=0)  # per run
    daily_budget_usd: float | None = Field(default=None, gt=0)  # all runs of it, per UTC day
    deadline_s: float | None = Field(default=None, gt=0)  # a run not finished by then times out

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        return _check_id("workflow", value)

    @classmethod
    def sequence(
        cls,
        name: str,
        agents: list[str] | tuple[str, ...],
        budget_usd: float | None = None,
        daily_budget_usd: float | None = None,
        deadline_s: float | None = None,
    ) -> Workflow:
        return cls(
            name=name,
            kind=WorkflowKind.SEQUENCE,
            steps=tuple(agents),
            budget_usd=budget_usd,
            daily_budget_usd=daily_budget_usd,
            deadline_s=deadline_s,
        )
