"""Calls cut off by a dead worker: on the books at their worst case, as spent but unknown.

A worker killed mid-call leaves its attempt running until the attempt's lease runs out; the call
may have reached the provider and been billed, and nobody will ever say for how much. When the
sweep gives such an attempt up, it books the call here: its worst case (what the call held, or
would have held, against its caps) stays on the spend caps in Redis as spent, and goes in the
cost ledger as an ``unknown`` row, at most that much. The ledger and the counters agree, so a
rebuild from the ledger restores the same caps, and no number of kills passes a cap.

A worker that was only slow and records its result after all replaces the row with the real
cost, and its settlement corrects the caps (``storage/lua/budget_settle.lua``).

The caps are booked before the ledger row is written (the row says what was booked), and once
more after it is committed (``Booking.confirm``, which changes nothing unless Redis lost its data
in between): the counters never fall below the ledger they are rebuilt from.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog

from orchestration.budget import Budget, caps_for
from orchestration.context import model_request
from orchestration.pricing import micro_to_usd
from orchestration.team import Team
from storage.budget_store import Forfeit
from storage.models import day_of, utcnow

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class CutOff:
    """An attempt given up while it was running: what its call was."""

    workflow_id: str
    workflow: str  # the workflow type's name
    run_budget_micro: int | None
    step_id: str
    attempt: int
    agent_id: str  # the agent that ran it (a fallback, once one took over)
    prompt: str | None
    history: list[list[str]] | None
    preamble: str | None = None
    turn: int = 0  # in a tool loop: the answer under way (the step's answers kept so far)

    @property
    def call_id(self) -> str:
        """The id the call was held and billed under: its attempt's, or, past the first answer
        of a tool loop, its turn's (``orchestration.step.tool_loop.as_turn``)."""
        base = f"{self.step_id}:{self.attempt}"
        return base if self.turn == 0 else f"{base}:{self.turn}"


@dataclass(frozen=True, slots=True)
class Booking:
    """A cut-off call booked on its caps: its cost-ledger row, and ``confirm``, to be called once
    that row is committed (it books the call again, which changes nothing unless Redis lost its
    data in between: then the counters get it back)."""

    row: dict[str, Any]
    confirm: Callable[[], object]


class CutOffCalls:
    def __init__(self, team: Team, budget: Budget) -> None:
        self._team = team
        self._budget = budget

    def book(self, call: CutOff) -> Booking | None:
        """Book ``call`` on its caps; the booking says its cost-ledger row (None: its agent is no
        longer registered, so its worst case cannot be known)."""
        agent = self._team.agents.get(call.agent_id)
        if agent is None:
            log.warning("cost.cut_off_call_of_unknown_agent", agent_id=call.agent_id)
            return None
        request = model_request(agent, call.prompt, call.history, call.call_id, call.preamble)
        caps = caps_for(
            agent, self._team.workflows.get(call.workflow), call.workflow_id, call.run_budget_micro
        )

        def forfeit() -> Forfeit:
            return self._budget.forfeit(call.call_id, request, caps)

        booked = forfeit()
        if not booked.known:
            log.warning(
                "cost.cut_off_call_booked",
                step_id=call.step_id,
                attempt=call.attempt,
                at_most_usd=micro_to_usd(booked.amount_micro),
                how=booked.booked.value,
            )
        now = utcnow()
        row = dict(
            id=call.call_id,
            team=self._team.name,
            workflow_id=call.workflow_id,
            workflow=call.workflow,
            step_id=call.step_id,
            agent_id=agent.id,
            model=agent.model,
            attempt=call.attempt,
            cost_micro=booked.amount_micro,
            unknown=not booked.known,
            day=day_of(now),
            created_at=now,
        )
        return Booking(row, forfeit)
