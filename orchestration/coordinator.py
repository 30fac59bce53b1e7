"""The coordinator: a state machine over a workflow's Workflow and Step rows.

``decide`` locks the workflow row, looks at its steps, and does at most what is ready now:
dispatch the next step, schedule a retry, hand a step to a fallback agent, or finish the
workflow. It never waits for anything. It runs inside the transaction that changed the state:
``submit`` (the first dispatch commits with the run), an agent's result (the next dispatch
commits with the result), and ``advance`` on the coordinator queue (retries that came due, and
whatever the maintenance sweep finds idle). Deciding twice, or for a finished workflow, is
harmless.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import structlog
from sqlmodel import Session

from bus.envelope import AgentMessage, request_step
from bus.publisher import Bus
from orchestration.pricing import micro_to_usd
from orchestration.retry import Backoff
from orchestration.team import Team
from storage import statements
from storage.db import is_postgres, session_scope
from storage.models import (
    StepRow,
    StepStatus,
    WorkflowRow,
    WorkflowStatus,
    as_utc,
    utcnow,
)
from storage.settings import Settings

log = structlog.get_logger(__name__)


@dataclass
class _Outcome:  # what one decision produced
    messages: list[AgentMessage] = field(default_factory=list)
    finished: WorkflowStatus | None = None


class Coordinator:
    def __init__(self, team: Team, bus: Bus, settings: Settings, backoff: Backoff | None = None):
        self._team = team
        self._bus = bus
        self._settings = settings
        self._url = settings.effective_database_url
        self._backoff = backoff or Backoff()

    def advance(self, workflow_id: str, delivered: str | None = None) -> None:
        """Decide in a transaction of its own, then route what was decided.

        ``delivered`` is the id of the message that asked for this, stamped as delivered."""
        with structlog.contextvars.bound_contextvars(workflow_id=workflow_id):
            with session_scope(self._url) as session:
                if delivered is not None:
                    mark_delivered(session, delivered)
                messages = self.decide(session, workflow_id)
            self._bus.route(messages)

    def decide(
        self, session: Session, workflow_id: str, locked: WorkflowRow | None = None
    ) -> list[AgentMessage]:
        """Lock the workflow row (unless the caller passes it ``locked``) and make the decisions
        that are due, inside the caller's transaction. Returns the messages recorded; the caller
        routes them after its commit."""
        workflow = locked or lock_workflow(session, workflow_id, self._url)
        if workflow is None:
            log.warning("coordinator.unknown_workflow", workflow_id=workflow_id)
            return []
        if WorkflowStatus(workflow.status).finished:
            return []
        steps = list(session.exec(statements.STEPS_OF_WORKFLOW, params={"w_id": workflow_id}).all())
        now = utcnow()
        outcome = self._advance_sequence(workflow, steps, now)
        workflow.updated_at = now
        for message in outcome.messages:
            self._bus.record(session, message)
        if outcome.finished is not None:
            log.info(
                "workflow.finished",
                workflow_id=workflow_id,
                status=outcome.finished.value,
                cost_usd=micro_to_usd(workflow.cost_micro),
            )
        return outcome.messages

    def _advance_sequence(
        self, workflow: WorkflowRow, steps: list[StepRow], now: datetime
    ) -> _Outcome:
        outcome = _Outcome()
        previous: StepRow | None = None
        for step in steps:
            status = StepStatus(step.status)
            if status is StepStatus.SUCCEEDED:
                previous = step
                continue
            if status is StepStatus.ATTEMPT_FAILED:
                self._after_failed_attempt(step, now)
                status = StepStatus(step.status)
            if status is StepStatus.FAILED:
                self._finish(workflow, steps, WorkflowStatus.FAILED, now, failed=step)
                outcome.finished = WorkflowStatus.FAILED
            elif status is StepStatus.PENDING and _due(step, now):
                step_input = workflow.input if previous is None else (previous.output or "")
                outcome.messages.append(self._dispatch(workflow, step, step_input, now))
            return outcome  # a sequence runs one step at a time
        self._finish(workflow, steps, WorkflowStatus.SUCCEEDED, now)
        outcome.finished = WorkflowStatus.SUCCEEDED
        return outcome

    def _dispatch(
        self, workflow: WorkflowRow, step: StepRow, step_input: str, now: datetime
    ) -> AgentMessage:
        step.ran_by = step.ran_by or step.agent_id
        step.attempt += 1
        step.agent_attempt += 1
        step.status = StepStatus.DISPATCHED.value
        step.input = step_input
        step.dispatched_at = now
        step.due_at = None
        step.lease_until = now + timedelta(seconds=self._settings.dispatch_timeout_s)
        if workflow.status == WorkflowStatus.PENDING.value:
            workflow.status = WorkflowStatus.RUNNING.value
        log.info(
            "step.dispatched",
            step_id=step.id,
            agent_id=step.ran_by,
            attempt=step.attempt,
        )
        request = request_step(
            agent_id=step.ran_by,
            workflow_id=workflow.id,
            step_id=step.id,
            attempt=step.attempt,
            priority=workflow.priority,
        )
        step.request_id = request.id
        return request

    def _after_failed_attempt(self, step: StepRow, now: datetime) -> None:
        """Retry on the same agent, move to its fallback, or give up."""
        agent = self._team.agent(step.ran_by or step.agent_id)
        if step.error_retryable and step.agent_attempt <= agent.max_retries:
            delay = self._backoff.delay_s(step.agent_attempt, step.retry_after_s)
            step.status = StepStatus.PENDING.value
            step.due_at = now + timedelta(seconds=delay)
            log.info(
                "step.retry_scheduled",
                step_id=step.id,
                agent_id=agent.id,
                attempt=step.attempt,
                delay_s=round(delay, 3),
                error_kind=step.error_kind,
            )
        elif agent.fallback is not None:
            log.info(
                "step.fallback",
                step_id=step.id,
                agent_id=agent.id,
                fallback=agent.fallback,
                error_kind=step.error_kind,
            )
            step.ran_by = agent.fallback
            step.agent_attempt = 0
            step.status = StepStatus.PENDING.value
            step.due_at = None
        else:
            step.status = StepStatus.FAILED.value
            step.finished_at = now

    def _finish(
        self,
        workflow: WorkflowRow,
        steps: list[StepRow],
        status: WorkflowStatus,
        now: datetime,
        failed: StepRow | None = None,
    ) -> None:
        workflow.status = status.value
        workflow.cost_micro = sum(step.cost_micro for step in steps)
        workflow.finished_at = now
        if status is WorkflowStatus.SUCCEEDED:
            workflow.output = steps[-1].output
        elif failed is not None:
            workflow.error = (
                f"step {failed.position + 1} ({failed.ran_by or failed.agent_id}) failed after "
                f"{failed.attempt} attempt(s): {failed.error_kind or 'error'}: {failed.error}"
            )


def _due(step: StepRow, now: datetime) -> bool:
    """A pending step may go unless it waits for a retry's due time."""
    return step.due_at is None or as_utc(step.due_at) <= now


def lock_workflow(session: Session, workflow_id: str, url: str) -> WorkflowRow | None:
    """The workflow row, locked until the transaction ends (PostgreSQL; SQLite has one writer).

    Every transaction that changes a workflow's steps takes this lock first, so locks are always
    taken in the same order: workflow, then steps."""
    query = statements.WORKFLOW_FOR_UPDATE if is_postgres(url) else statements.WORKFLOW
    return session.exec(query, params={"w_id": workflow_id}).one_or_none()


def mark_delivered(session: Session, message_id: str) -> None:
    """Stamp a message as taken by its consumer (audit), in the consumer's transaction."""
    statements.run(
        session, statements.MARK_DELIVERED, {"w_id": message_id, "delivered_at": utcnow()}
    )
