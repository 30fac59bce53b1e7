"""The claim stage: the fence that keeps a redelivered message from calling the model twice.

One statement, committed on its own, moves the attempt from dispatched to running and returns
the prompt and the agent's earlier exchanges, which the coordinator composed when it dispatched.
It promises that one delivery at most gets past it for an attempt: any other finds the attempt
claimed, finished or superseded, and gets None. The same delivery claiming again (its first
claim's commit was lost with the connection) finds its own token and is let through, so a
database that went away costs no attempt (``storage.db_retry``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from bus.envelope import AgentMessage
from orchestration.context import model_request
from orchestration.definitions import Agent
from storage import statements
from storage.db_retry import retrying
from storage.executor import run_alone
from storage.models import new_id, utcnow
from storage.settings import Settings
from workers.providers.base import ModelRequest


@dataclass(frozen=True, slots=True)
class Attempt:
    """The attempt of a step this delivery runs."""

    message: AgentMessage
    step_id: str
    number: int
    agent: Agent  # the agent that runs it: the one asked for, or its fallback
    requested_agent_id: str  # the agent the workflow asked for
    parent_step_id: str | None
    call_id: str  # "<step_id>:<number>": the call's id on the breaker, the caps and the ledger


def lease_s(agent: Agent, settings: Settings) -> float:
    """How long an attempt holds its step: the agent's deadline and a margin (the breaker's
    probe and the call's cost hold last as long)."""
    return agent.timeout_s + settings.lease_margin_s


class Claims:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._url = settings.effective_database_url

    def claim(
        self, message: AgentMessage, step_id: str, attempt: int, agent: Agent
    ) -> tuple[Attempt, ModelRequest] | None:
        """The attempt and its request, or None: not this delivery's to run."""
        now = utcnow()
        lease = timedelta(seconds=lease_s(agent, self._settings))
        token = new_id()  # this delivery's: claiming again after a lost commit finds it
        params = {
            "w_id": step_id,
            "w_attempt": attempt,
            "w_token": token,
            "claim_token": token,
            "started_at": now,
            "lease_until": now + lease,
        }
        claimed = retrying(lambda: run_alone(self._url, statements.CLAIM_STEP, params), "claim")
        row = claimed.one_or_none()
        if row is None:
            return None
        call_id = f"{step_id}:{attempt}"
        request = model_request(agent, row.prompt, row.history, call_id, row.preamble)
        this = Attempt(
            message=message,
            step_id=step_id,
            number=attempt,
            agent=agent,
            requested_agent_id=row.agent_id,
            parent_step_id=row.parent_step_id,
            call_id=call_id,
        )
        return this, request
