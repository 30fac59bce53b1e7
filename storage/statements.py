"""The statements of the hot path, built once with bound parameters and run as Core.

Building a SQLAlchemy expression and its cache key on every call, and going through the ORM's
bookkeeping, cost more CPU than the database work itself (see docs/performance.md). These are
the statements every step runs; each is executed on a session's connection with a dict of
parameters, inside the caller's transaction. Parameters for WHERE clauses are prefixed ``w_``
(SQLAlchemy reserves column names for the SET clause).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table, bindparam, insert, update
from sqlalchemy.engine import CursorResult
from sqlmodel import Session, col, select

from storage.models import MessageRow, StepRow, StepStatus, TraceRow, WorkflowRow

steps: Table = StepRow.__table__  # type: ignore[attr-defined]
messages: Table = MessageRow.__table__  # type: ignore[attr-defined]
traces: Table = TraceRow.__table__  # type: ignore[attr-defined]
workflows: Table = WorkflowRow.__table__  # type: ignore[attr-defined]

# dispatched -> running for one attempt: the fence against a second delivery of the same attempt
CLAIM_STEP = (
    update(steps)
    .where(
        steps.c.id == bindparam("w_id"),
        steps.c.attempt == bindparam("w_attempt"),
        steps.c.status == StepStatus.DISPATCHED.value,
    )
    .values(
        status=StepStatus.RUNNING.value,
        started_at=bindparam("started_at"),
        lease_until=bindparam("lease_until"),
    )
    .returning(steps.c.workflow_id, steps.c.position, steps.c.input)
)

_ADD_USAGE = {
    "input_tokens": steps.c.input_tokens + bindparam("add_input", type_=steps.c.input_tokens.type),
    "output_tokens": steps.c.output_tokens
    + bindparam("add_output", type_=steps.c.output_tokens.type),
    "cache_creation_tokens": steps.c.cache_creation_tokens
    + bindparam("add_cache_creation", type_=steps.c.cache_creation_tokens.type),
    "cache_read_tokens": steps.c.cache_read_tokens
    + bindparam("add_cache_read", type_=steps.c.cache_read_tokens.type),
    "cost_micro": steps.c.cost_micro + bindparam("add_cost", type_=steps.c.cost_micro.type),
    "lease_until": None,
}
_STILL_RUNNING = (
    steps.c.id == bindparam("w_id"),
    steps.c.attempt == bindparam("w_attempt"),
    steps.c.status == StepStatus.RUNNING.value,
)
# running -> succeeded, if this attempt still holds the step (its lease did not run out)
STEP_SUCCEEDED = (
    update(steps)
    .where(*_STILL_RUNNING)
    .values(
        **_ADD_USAGE,
        status=StepStatus.SUCCEEDED.value,
        output=bindparam("output"),
        error=None,
        error_kind=None,
        finished_at=bindparam("finished_at"),
    )
)
# running -> attempt_failed: the coordinator decides what follows
STEP_ATTEMPT_FAILED = (
    update(steps)
    .where(*_STILL_RUNNING)
    .values(
        **_ADD_USAGE,
        status=StepStatus.ATTEMPT_FAILED.value,
        error=bindparam("error"),
        error_kind=bindparam("error_kind"),
        error_retryable=bindparam("error_retryable"),
        retry_after_s=bindparam("retry_after_s"),
    )
)

MARK_DELIVERED = (
    update(messages)
    .where(messages.c.id == bindparam("w_id"), messages.c.delivered_at.is_(None))
    .values(delivered_at=bindparam("delivered_at"))
)

INSERT_MESSAGE = insert(messages)
INSERT_TRACE = insert(traces)

# Reads, as ORM selects where the caller needs rows it will change (prebuilt all the same: a
# statement object keeps its cache key, so it is neither rebuilt nor re-keyed per call).
WORKFLOW = select(WorkflowRow).where(col(WorkflowRow.id) == bindparam("w_id"))
WORKFLOW_FOR_UPDATE = WORKFLOW.with_for_update()
STEPS_OF_WORKFLOW = (
    select(StepRow)
    .where(col(StepRow.workflow_id) == bindparam("w_id"))
    .order_by(col(StepRow.position))
)
WORKFLOW_INPUT = select(workflows.c.input).where(workflows.c.id == bindparam("w_id"))
EARLIER_OUTPUTS = (
    select(steps.c.position, steps.c.ran_by, steps.c.agent_id, steps.c.output)
    .where(
        steps.c.workflow_id == bindparam("w_id"),
        steps.c.position < bindparam("w_position"),
        steps.c.status == StepStatus.SUCCEEDED.value,
    )
    .order_by(steps.c.position)
)


def run(session: Session, statement: Any, params: dict[str, Any]) -> CursorResult[*tuple[Any, ...]]:
    """Execute a prebuilt statement on the session's connection, in its transaction."""
    return session.connection().execute(statement, params)
