"""The periodic sweep (run by beat): keeps workflows moving when a message or a worker is lost.

- workflows that sit idle (nothing dispatched or running, no retry waiting) are advanced: an
  ``advance`` that never reached the broker, or a coordinator that died mid-decision;
- attempts whose lease ran out (a worker died mid-step) are marked failed-and-retryable; the
  call a running one was making is booked at its worst case, as spent but unknown
  (``cut_off_calls.py``);
- requests the broker never got or lost are marked the same way: a step dispatched a while ago
  whose agent queue is empty and whose message no worker holds unacknowledged (a process killed
  between its commit and its publish never sent it, on either broker; kombu's Redis transport
  loses a message popped by a worker that dies before recording it), or, on Redis, whose
  message a worker took long ago and never started (the worker died holding it, and the broker
  would give it back only after its visibility timeout);
- workflows with a retry that is due are advanced;
- workflows with an approval past its due time (its ``on_timeout`` is to be applied), or one a
  person decided that the run has not gone on from (the decision's advance was lost), are
  advanced: the coordinator settles them under the run's lock.
Every change goes through a compare-and-set on the step row, so two sweeps at once do no harm,
and each is followed by an ``advance`` so the coordinator decides what comes next.
"""

from __future__ import annotations

import time
from datetime import timedelta

import structlog
from sqlalchemy import or_, update
from sqlmodel import col, select

from bus.brokers import BrokerContents
from bus.envelope import advance
from bus.publisher import Bus
from bus.routing import agent_queue
from orchestration.cut_off_calls import CutOff, CutOffCalls
from storage import approvals, statements
from storage.db import session_scope
from storage.executor import within
from storage.models import StepRow, StepStatus, WorkflowRow, WorkflowStatus, utcnow
from storage.settings import Settings
from storage.tool_ledger import ToolLedger

log = structlog.get_logger(__name__)

SENDER = "maintenance"
IDLE_AFTER_S = 15.0
BATCH = 500
# Every query starts from the unfinished workflows (indexed by status), then reaches their steps
# through the (workflow_id, position) index: step rows carry no index on columns that change.
UNFINISHED = WorkflowStatus.unfinished()
# A run that waits for a person is not idle: nothing is lost while it waits, and the decision
# (or its gate's timeout, below) moves it.
MOVING = [WorkflowStatus.PENDING.value, WorkflowStatus.RUNNING.value]


class Maintenance:
    def __init__(
        self,
        bus: Bus,
        settings: Settings,
        broker: BrokerContents | None = None,
        idle_after_s: float = IDLE_AFTER_S,
        lost_after_s: float | None = None,
        team: str | None = None,
        cut_off: CutOffCalls | None = None,
    ) -> None:
        """``team``: sweep that team's workflows only (a database may hold several teams', and
        each team's sweep dispatches on its own broker); None sweeps every team's. ``cut_off``
        books the calls of attempts given up while running (None: they are not booked)."""
        self._bus = bus
        self._ours = [] if team is None else [col(WorkflowRow.team) == team]
        self._url = settings.effective_database_url
        self._record_cut_off_cost = statements.record_cut_off_cost(self._url)
        self._cut_off = cut_off
        self._tool_ledger = ToolLedger(self._url)
        self._broker = broker
        self._idle_after_s = idle_after_s
        self._lost_after_s = settings.lost_request_after_s if lost_after_s is None else lost_after_s
        self._unclaimed_after_s = settings.unclaimed_request_after_s

    def sweep(self) -> dict[str, int]:
        counts = {
            "idle_workflows": self._advance_idle(),
            "expired_leases": self._expire_leases(),
            "lost_requests": self._recover_lost_requests(),
            "due_retries": self._advance_due(),
            "overdue_workflows": self._advance_overdue(),
            "approvals_to_settle": self._advance_approvals(),
        }
        # At INFO only when it did something: an idle coordinator sweeps every few seconds.
        (log.info if any(counts.values()) else log.debug)("maintenance.swept", **counts)
        return counts

    def _expire_leases(self) -> int:
        now = utcnow()
        with session_scope(self._url) as session:
            rows = session.exec(
                select(
                    StepRow,
                    col(WorkflowRow.priority),
                    col(WorkflowRow.name),
                    col(WorkflowRow.budget_micro),
                )
                .join(WorkflowRow, col(WorkflowRow.id) == col(StepRow.workflow_id))
                .where(
                    col(WorkflowRow.status).in_(UNFINISHED),
                    *self._ours,
                    col(StepRow.status).in_(
                        [StepStatus.RUNNING.value, StepStatus.DISPATCHED.value]
                    ),
                    col(StepRow.lease_until) < now,
                )
                .limit(BATCH)
            ).all()
        return sum(
            self._fail_attempt(
                step,
                priority,
                "lease_expired",
                f"attempt {step.attempt} was {step.status} past its lease (worker lost?)",
                cut_off=self._cut_off_call(step, name, budget_micro),
            )
            for step, priority, name, budget_micro in rows
        )

    def _cut_off_call(
        self, step: StepRow, workflow: str, budget_micro: int | None
    ) -> CutOff | None:
        """The call a running attempt may have made (in a tool loop, the answer under way: the
        step's answers kept so far); None for an attempt no worker had started, which made no
        call."""
        if self._cut_off is None or step.status != StepStatus.RUNNING.value:
            return None
        return CutOff(
            workflow_id=step.workflow_id,
            workflow=workflow,
            run_budget_micro=budget_micro,
            step_id=step.id,
            attempt=step.attempt,
            agent_id=step.ran_by or step.agent_id,
            prompt=step.prompt,
            history=step.history,
            preamble=step.preamble,
            turn=self._tool_ledger.turns_kept(step.id),
        )

    def _recover_lost_requests(self) -> int:
        if self._broker is None:
            return 0
        cutoff = utcnow() - timedelta(seconds=self._lost_after_s)
        with session_scope(self._url) as session:
            rows = session.exec(
                select(StepRow, col(WorkflowRow.priority))
                .join(WorkflowRow, col(WorkflowRow.id) == col(StepRow.workflow_id))
                .where(
                    col(WorkflowRow.status).in_(UNFINISHED),
                    *self._ours,
                    StepRow.status == StepStatus.DISPATCHED.value,
                    col(StepRow.dispatched_at) < cutoff,
                )
                .limit(BATCH)
            ).all()
        if not rows:
            return 0
        held = self._broker.held_since()
        abandoned_before = time.time() - self._unclaimed_after_s
        agents = sorted({step.ran_by or step.agent_id for step, _ in rows})
        depths = self._broker.queue_depths([agent_queue(agent) for agent in agents])
        empty_queues = {agent for agent in agents if depths[agent_queue(agent)] == 0}
        lost = 0
        for step, priority in rows:
            taken_at = held.get(step.request_id or "")
            if taken_at is None and (step.ran_by or step.agent_id) in empty_queues:
                lost += self._fail_attempt(
                    step,
                    priority,
                    "message_lost",
                    f"the request for attempt {step.attempt} is neither queued nor held by a "
                    "worker (never sent, or lost by the broker)",
                )
            elif taken_at is not None and taken_at < abandoned_before:
                # Still dispatched: no worker started it. The claim fences the held copy off
                # when the broker gives it back after the visibility timeout.
                lost += self._fail_attempt(
                    step,
                    priority,
                    "message_abandoned",
                    f"the request for attempt {step.attempt} was taken from its queue "
                    f"{time.time() - taken_at:.0f} s ago by a worker that never started it "
                    "(the worker died holding it)",
                )
        return lost

    def _fail_attempt(
        self,
        step: StepRow,
        priority: int,
        kind: str,
        error: str,
        cut_off: CutOff | None = None,
    ) -> int:
        """Mark one attempt failed-and-retryable if it is still where we saw it, the call it cut
        off (if any) booked on its caps and in the cost ledger; tell the coordinator. Returns 1
        if this sweep made the change."""
        booking = None if cut_off is None or self._cut_off is None else self._cut_off.book(cut_off)
        notice = advance(
            sender=SENDER, workflow_id=step.workflow_id, priority=priority, step_id=step.id
        )
        with session_scope(self._url) as session:
            changed = session.exec(
                update(StepRow)
                .where(
                    col(StepRow.id) == step.id,
                    col(StepRow.attempt) == step.attempt,
                    col(StepRow.status) == step.status,
                )
                .values(
                    status=StepStatus.ATTEMPT_FAILED.value,
                    error_kind=kind,
                    error=error,
                    error_retryable=True,
                    retry_after_s=0.0,
                    lease_until=None,
                )
            ).rowcount
            if changed:
                tx = within(session.connection())
                if booking is not None:
                    tx.run(self._record_cut_off_cost, booking.row)
                self._bus.record(tx, notice)
        if not changed:
            return 0
        if booking is not None:
            booking.confirm()
        log.warning(f"step.{kind}", step_id=step.id, attempt=step.attempt, status=step.status)
        self._bus.route([notice])
        return 1

    def _advance_idle(self) -> int:
        """Advance unfinished workflows that nothing is moving: no attempt dispatched or
        running, no retry waiting, and no change for a while."""
        now = utcnow()
        busy = select(StepRow.workflow_id).where(
            col(StepRow.workflow_id) == col(WorkflowRow.id),
            or_(
                col(StepRow.status).in_([StepStatus.DISPATCHED.value, StepStatus.RUNNING.value]),
                col(StepRow.due_at) > now,
            ),
        )
        with session_scope(self._url) as session:
            idle = session.exec(
                select(WorkflowRow.id, WorkflowRow.priority)
                .where(
                    col(WorkflowRow.status).in_(MOVING),
                    *self._ours,
                    col(WorkflowRow.updated_at) < now - timedelta(seconds=self._idle_after_s),
                    ~busy.exists(),
                )
                .limit(BATCH)
            ).all()
        for workflow_id, priority in idle:
            log.warning("workflow.idle", workflow_id=workflow_id)
            self._bus.record_and_route(
                advance(sender=SENDER, workflow_id=workflow_id, priority=priority)
            )
        return len(idle)

    def _advance_overdue(self) -> int:
        """Advance unfinished workflows whose deadline passed: the coordinator ends them."""
        with session_scope(self._url) as session:
            overdue = session.exec(
                select(WorkflowRow.id, WorkflowRow.priority)
                .where(
                    col(WorkflowRow.status).in_(UNFINISHED),
                    *self._ours,
                    col(WorkflowRow.deadline_at) <= utcnow(),
                )
                .limit(BATCH)
            ).all()
        for workflow_id, priority in overdue:
            self._bus.record_and_route(
                advance(sender=SENDER, workflow_id=workflow_id, priority=priority)
            )
        return len(overdue)

    def _advance_approvals(self) -> int:
        """Advance unfinished workflows with an approval to settle: past its due time, or
        decided by a person and not gone on from."""
        table = approvals.approvals
        with session_scope(self._url) as session:
            settle = session.execute(
                select(WorkflowRow.id, WorkflowRow.priority)
                .join(table, table.c.workflow_id == col(WorkflowRow.id))
                .where(col(WorkflowRow.status).in_(UNFINISHED), *self._ours, approvals.SETTLEABLE)
                .distinct()
                .limit(BATCH),
                {"w_now": utcnow()},
            ).all()
        for workflow_id, priority in settle:
            self._bus.record_and_route(
                advance(sender=SENDER, workflow_id=workflow_id, priority=priority)
            )
        return len(settle)

    def _advance_due(self) -> int:
        now = utcnow()
        with session_scope(self._url) as session:
            due = session.exec(
                select(WorkflowRow.id, WorkflowRow.priority)
                .join(StepRow, col(StepRow.workflow_id) == col(WorkflowRow.id))
                .where(
                    col(WorkflowRow.status).in_(UNFINISHED),
                    *self._ours,
                    col(StepRow.status) == StepStatus.PENDING.value,
                    col(StepRow.due_at) <= now,
                )
                .distinct()
                .limit(BATCH)
            ).all()
        for workflow_id, priority in due:
            self._bus.record_and_route(
                advance(sender=SENDER, workflow_id=workflow_id, priority=priority)
            )
        return len(due)
