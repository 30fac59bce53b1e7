"""The periodic sweep (run by beat): keeps workflows moving when a message or a worker is lost.

- messages recorded but never routed (a crash between commit and publish) are routed;
- attempts whose lease ran out (a worker died mid-step, or a request was never picked up) are
  marked failed-and-retryable, and the coordinator is told;
- steps whose retry is due get their workflow advanced.
Every action goes through a compare-and-set, so two sweeps at once do no harm.
"""

from __future__ import annotations

import structlog
from sqlalchemy import update
from sqlmodel import col, select

from bus.envelope import advance
from bus.publisher import Bus
from storage.db import session_scope
from storage.models import StepRow, StepStatus, WorkflowRow, WorkflowStatus, utcnow
from storage.settings import Settings

log = structlog.get_logger(__name__)

SENDER = "maintenance"
STRANDED_AFTER_S = 15.0
BATCH = 500


class Maintenance:
    def __init__(
        self, bus: Bus, settings: Settings, stranded_after_s: float = STRANDED_AFTER_S
    ) -> None:
        self._bus = bus
        self._url = settings.effective_database_url
        self._stranded_after_s = stranded_after_s

    def sweep(self) -> dict[str, int]:
        counts = {
            "stranded_messages": self._bus.route_stranded(self._stranded_after_s, BATCH),
            "expired_leases": self._expire_leases(),
            "due_retries": self._advance_due(),
        }
        if any(counts.values()):
            log.info("maintenance.swept", **counts)
        return counts

    def _expire_leases(self) -> int:
        now = utcnow()
        expired = 0
        with session_scope(self._url) as session:
            rows = session.exec(
                select(StepRow, col(WorkflowRow.priority))
                .join(WorkflowRow, col(WorkflowRow.id) == col(StepRow.workflow_id))
                .where(
                    col(StepRow.status).in_(
                        [StepStatus.RUNNING.value, StepStatus.DISPATCHED.value]
                    ),
                    col(StepRow.lease_until) < now,
                )
                .limit(BATCH)
            ).all()
        for step, priority in rows:
            step_id, attempt, status, workflow_id = (
                step.id,
                step.attempt,
                step.status,
                step.workflow_id,
            )
            with session_scope(self._url) as session:
                changed = session.exec(
                    update(StepRow)
                    .where(
                        col(StepRow.id) == step_id,
                        col(StepRow.attempt) == attempt,
                        col(StepRow.status) == status,
                    )
                    .values(
                        status=StepStatus.ATTEMPT_FAILED.value,
                        error_kind="lease_expired",
                        error=f"attempt {attempt} was {status} past its lease (worker lost?)",
                        error_retryable=True,
                        retry_after_s=0.0,
                        lease_until=None,
                    )
                ).rowcount
                if changed:
                    notice = advance(
                        sender=SENDER, workflow_id=workflow_id, priority=priority, step_id=step_id
                    )
                    self._bus.record(session, notice)
            if changed:
                expired += 1
                log.warning("step.lease_expired", step_id=step_id, attempt=attempt, status=status)
                self._bus.route([notice])
        return expired

    def _advance_due(self) -> int:
        now = utcnow()
        with session_scope(self._url) as session:
            due = session.exec(
                select(WorkflowRow.id, WorkflowRow.priority)
                .join(StepRow, col(StepRow.workflow_id) == col(WorkflowRow.id))
                .where(
                    col(WorkflowRow.status).in_(
                        [WorkflowStatus.PENDING.value, WorkflowStatus.RUNNING.value]
                    ),
                    col(StepRow.status) == StepStatus.PENDING.value,
                    col(StepRow.due_at) <= now,
                )
                .distinct()
                .limit(BATCH)
            ).all()
        for workflow_id, priority in due:
            self._bus.publish(advance(sender=SENDER, workflow_id=workflow_id, priority=priority))
        return len(due)
