"""The record stage: what an attempt came to, and what follows it, in ONE transaction.

The result or the failure goes on the step row, fenced: no row changes when the attempt no
longer holds its step (its lease ran out meanwhile). The call's trace is added, and its
cost-ledger row if the call was made; the request is stamped delivered; the agent's response is
recorded on the bus's audit trail. Then the workflow row is locked (and charged the call's
cost), and, if the attempt still held its step, the coordinator decides what comes next.
Nothing leaves before the commit: settling the cost and routing the decision wait for it.

It rides out a database that went away (``storage.db_retry``): a transaction that failed is run
again, unless its commit did land (the attempt's trace is there); the sweep then routes what it
recorded, and the stage has nothing to hand on.

Deciding here, rather than routing the response to the coordinator queue, saves a broker hop and
a transaction per step; the coordinator's code makes the decision either way, and the response
is on record as if it had travelled (published, then delivered in the same transaction).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import structlog

from bus.envelope import step_response
from bus.publisher import Bus
from orchestration.coordinator import Coordinator, Decision, lock_workflow, mark_delivered
from orchestration.step.call import Call
from orchestration.step.claim import Attempt
from orchestration.step.rows import ledger_row, step_update, trace_row, usage_added
from orchestration.team import Team
from orchestration.workflow.state import RunState, StepState
from storage import statements
from storage.db_retry import retrying
from storage.executor import transaction
from storage.models import TOOL_USE, utcnow
from storage.tool_ledger import ToolLedger
from workers.providers.base import Block, block_json

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Recorded:
    """What recording an attempt committed: the coordinator's decision, whether the attempt
    still held its step, and the run as it was locked."""

    decision: Decision
    held: bool
    run: RunState | None


class Records:
    def __init__(self, team: Team, bus: Bus, coordinator: Coordinator, url: str) -> None:
        self._team = team
        self._bus = bus
        self._coordinator = coordinator
        self._url = url
        self._record_cost = statements.record_cost(url)
        self._ledger = ToolLedger(url)

    def record(
        self, this: Attempt, call: Call, once: Callable[[Attempt, Call], Recorded]
    ) -> Recorded | None:
        """What ``once`` (the transaction: ``self.once``, or what stands in for it) committed,
        run again while the database is away; None if a run whose commit seemed lost had in
        fact committed."""
        first = True
        recorded: list[Recorded] = []

        def record() -> None:
            nonlocal first
            if not first and self.landed(this):
                log.warning("step.recorded_before_the_connection_was_lost")
                return
            first = False
            recorded.append(once(this, call))

        retrying(record, "record the step's result")
        return recorded[0] if recorded else None

    def turn(
        self, this: Attempt, call: Call, turn: int, content: tuple[Block, ...], lease_s: float
    ) -> bool:
        """An answer of the model that asked for tools, recorded before its tools run, in one
        transaction: its trace (outcome ``tool_use``), its cost-ledger row, its usage on the
        step (whose lease it holds for one more turn), the run charged, and the answer kept for
        an attempt that starts again. False: the attempt no longer holds its step (its lease ran
        out); what the call cost is on record all the same."""
        usage = usage_added(call)  # a turn leaves the step running: only its usage is added
        workflow_id = str(this.message.workflow_id)

        tries = 0

        def record() -> bool:
            nonlocal tries
            tries += 1
            if tries > 1 and len(self._ledger.turns(this.step_id)) > turn:
                return True  # its commit did land before the connection was lost
            with transaction(self._url) as tx:
                held = tx.run(
                    statements.STEP_TURN,
                    {
                        **usage,
                        "w_id": this.step_id,
                        "w_attempt": this.number,
                        "lease_until": utcnow() + timedelta(seconds=lease_s),
                    },
                ).one_or_none()
                tx.run(statements.INSERT_TRACE, {**trace_row(this, call), "outcome": TOOL_USE})
                tx.run(self._record_cost, ledger_row(self._team.name, this, call))
                tx.run(statements.ADD_WORKFLOW_COST, {"w_id": workflow_id, "add_cost": call.cost})
                self._ledger.keep_turn(
                    tx,
                    (workflow_id, this.step_id, turn),
                    this.number,
                    this.agent.id,
                    [block_json(block) for block in content],
                )
                return held is not None

        return retrying(record, "record an answer of the tool loop")

    def hold(self, this: Attempt, lease_s: float) -> bool:
        """Hold the step ``lease_s`` more seconds from now; False: the attempt no longer holds
        it."""
        params = {
            "w_id": this.step_id,
            "w_attempt": this.number,
            "lease_until": utcnow() + timedelta(seconds=lease_s),
        }
        with transaction(self._url) as tx:
            return tx.run(statements.STEP_HOLD, params).one_or_none() is not None

    def landed(self, this: Attempt) -> bool:
        """Whether the attempt is on record already (its trace is there)."""
        with transaction(self._url) as tx:
            found = tx.run(
                statements.TRACE_OF_ATTEMPT, {"w_step": this.step_id, "w_attempt": this.number}
            )
            return found.one_or_none() is not None

    def once(self, this: Attempt, call: Call) -> Recorded:
        """One transaction: the result, its trace, its ledger row, the response on the bus and
        the coordinator's decision."""
        message, step_id, attempt, agent = this.message, this.step_id, this.number, this.agent
        workflow_id = str(message.workflow_id)
        decision = Decision()
        with transaction(self._url) as tx:
            statement, params = step_update(call)
            # No row when this attempt no longer holds the step: its lease ran out meanwhile.
            updated = tx.run(statement, {**params, "w_id": step_id, "w_attempt": attempt})
            row = updated.one_or_none()
            tx.run(statements.INSERT_TRACE, trace_row(this, call))
            if call.made:
                tx.run(self._record_cost, ledger_row(self._team.name, this, call))
            mark_delivered(tx, message.id)
            # The agent's answer goes on record like every message; the coordinator acts on it
            # in this very transaction, so it is delivered as it is recorded.
            self._bus.record(
                tx,
                step_response(
                    agent_id=agent.id,
                    workflow_id=workflow_id,
                    step_id=step_id,
                    attempt=attempt,
                    priority=message.priority,
                    outcome=call.outcome,
                    cost_micro=call.cost,
                ),
                delivered_at=utcnow(),
            )
            # The run's lock last, so that it is held for the decision alone: the branches of
            # a fan-out record side by side, and queue only to decide.
            run = lock_workflow(tx, workflow_id, add_cost=call.cost)
            if row is not None and run is not None:
                decision = self._coordinator.decide(tx, run, StepState(**row._asdict()))
        return Recorded(decision, row is not None, run)
