"""The admit stage: whether a claimed attempt may call the model, asked before it does.

First the agent's circuit breaker (``orchestration.breakers``: one for all workers, half-open
lets exactly one probe through), then the spend caps the call answers to (``orchestration.budget``):
its worst case is held on all of them at once, atomically in Redis, so that no cap is overshot
under any concurrency. The breaker is asked first, so that a call it turns away holds no money.
A refusal is returned, not raised: the attempt is then recorded as a call not made, at no cost.
After the call, the breaker hears how it went (``after_call``); the hold is settled later, once
the call's ledger row is committed (``settle``).
"""

from __future__ import annotations

from bus.envelope import AgentMessage
from orchestration.breakers import Breakers
from orchestration.budget import Budget, caps_for
from orchestration.definitions import Agent
from orchestration.step.call import Call
from orchestration.step.claim import Attempt, lease_s
from orchestration.team import Team
from storage.breaker_store import Decision
from storage.budget_store import Cap
from storage.errors import BreakerOpen, CostLimitExceeded
from storage.settings import Settings
from workers.providers.base import ModelRequest

Refusal = BreakerOpen | CostLimitExceeded


class Admission:
    def __init__(self, team: Team, budget: Budget, breakers: Breakers, settings: Settings) -> None:
        self._team = team
        self._budget = budget
        self._breakers = breakers
        self._settings = settings

    def caps(self, message: AgentMessage, agent: Agent) -> list[Cap]:
        """The spend caps a call of ``agent`` for the run of ``message`` answers to."""
        name = message.payload.get("workflow")
        budget = message.payload.get("budget_micro")
        return caps_for(
            agent,
            self._team.workflows.get(str(name)) if name else None,
            str(message.workflow_id),
            int(budget) if budget is not None else None,
        )

    def admit(self, this: Attempt, request: ModelRequest, caps: list[Cap]) -> Decision | Refusal:
        """How the breaker let the call through (its worst case now held on ``caps``), or why
        the call may not be made."""
        agent, call_id = this.agent, this.call_id
        admitted = self._breakers.admit(
            agent, call_id, probe_lease_s=lease_s(agent, self._settings)
        )
        if isinstance(admitted, BreakerOpen):
            return admitted
        try:
            self._budget.hold(call_id, request, caps, ttl_s=lease_s(agent, self._settings))
        except CostLimitExceeded as refusal:
            self._breakers.not_made(agent, call_id, admitted)
            return refusal
        return admitted

    def after_call(self, this: Attempt, admitted: Decision, call: Call) -> None:
        """The breaker hears how the call it let through went."""
        self._breakers.record(this.agent, this.call_id, admitted, call.error)
