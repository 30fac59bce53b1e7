"""The statements of the hot path, built once with bound parameters and run as Core.

Building a SQLAlchemy expression and its cache key on every call, and going through the ORM's
bookkeeping, cost more CPU than the database work itself (see docs/performance.md). These are
the statements every step runs, each executed with a dict of parameters in the caller's
transaction by ``storage.executor``. Parameters for WHERE clauses are prefixed ``w_``
(SQLAlchemy reserves column names for the SET clause).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table, and_, bindparam, case, insert, or_, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from storage.errors import ConfigurationError
from storage.models import (
    CostLedgerRow,
    MessageAckRow,
    MessageRow,
    StepRow,
    StepStatus,
    TraceRow,
    WorkflowRow,
)

steps: Table = StepRow.__table__  # type: ignore[attr-defined]
messages: Table = MessageRow.__table__  # type: ignore[attr-defined]
traces: Table = TraceRow.__table__  # type: ignore[attr-defined]
workflows: Table = WorkflowRow.__table__  # type: ignore[attr-defined]
ledger: Table = CostLedgerRow.__table__  # type: ignore[attr-defined]
message_acks: Table = MessageAckRow.__table__  # type: ignore[attr-defined]

# dispatched -> running for one attempt: the fence against a second delivery of the same attempt.
# It returns what the agent is to be asked, composed by the coordinator when it dispatched.
# The same delivery claiming again (its first claim's commit was lost with the connection)
# finds its own token and is let through again; any other delivery is fenced off.
CLAIM_STEP = (
    update(steps)
    .where(
        steps.c.id == bindparam("w_id"),
        steps.c.attempt == bindparam("w_attempt"),
        or_(
            steps.c.status == StepStatus.DISPATCHED.value,
            and_(
                steps.c.status == StepStatus.RUNNING.value,
                steps.c.claim_token == bindparam("w_token"),
            ),
        ),
    )
    .values(
        status=StepStatus.RUNNING.value,
        started_at=bindparam("started_at"),
        lease_until=bindparam("lease_until"),
        claim_token=bindparam("claim_token"),
    )
    .returning(steps.c.prompt, steps.c.history, steps.c.agent_id, steps.c.parent_step_id)
)

_ADD_USAGE = {
    "input_tokens": steps.c.input_tokens + bindparam("add_input", type_=steps.c.input_tokens.type),
    "output_tokens": steps.c.output_tokens
    + bindparam("add_output", type_=steps.c.output_tokens.type),
    "cache_creation_tokens": steps.c.cache_creation_tokens
    + bindparam("add_cache_creation", type_=steps.c.cache_creation_tokens.type),
    "cache_creation_1h_tokens": steps.c.cache_creation_1h_tokens
    + bindparam("add_cache_creation_1h", type_=steps.c.cache_creation_1h_tokens.type),
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

# -- the bus's acknowledgements (bus/publisher.py, bus/ack_sweeper.py) ----------------------------
MESSAGE_FOR_ACK = select(messages.c.recipients, messages.c.attempt).where(
    messages.c.id == bindparam("w_id")
)
MESSAGE_ENVELOPE = select(messages.c.payload).where(messages.c.id == bindparam("w_id"))
ACK_OF = select(message_acks.c.attempt).where(
    message_acks.c.message_id == bindparam("w_id"),
    message_acks.c.recipient == bindparam("w_recipient"),
)
_republished_attempt = bindparam("attempt", type_=messages.c.attempt.type)
_republished_priority = bindparam("priority", type_=messages.c.priority.type)
# Published again: the row keeps the highest attempt and priority any copy went out with.
MESSAGE_REPUBLISHED = (
    update(messages)
    .where(messages.c.id == bindparam("w_id"))
    .values(
        attempt=case(
            (messages.c.attempt < _republished_attempt, _republished_attempt),
            else_=messages.c.attempt,
        ),
        priority=case(
            (messages.c.priority < _republished_priority, _republished_priority),
            else_=messages.c.priority,
        ),
    )
)
_INSERT_ACK_ONCE = {
    "postgresql": postgresql_insert(message_acks).on_conflict_do_nothing(),
    "sqlite": sqlite_insert(message_acks).on_conflict_do_nothing(),
}


def insert_ack_once(database_url: str) -> Any:
    """Record an acknowledgement; one already recorded for the (message, recipient) stays."""
    return _of_dialect(database_url, _INSERT_ACK_ONCE)


def _known_cost(statement: Any) -> Any:
    return statement.on_conflict_do_update(
        index_elements=[ledger.c.id],
        set_={"cost_micro": statement.excluded.cost_micro, "unknown": False},
    )


# A call's cost, as its worker records it: it replaces the row the sweep wrote at the call's
# worst case when it gave the attempt up (the worker was slow, not dead).
_RECORD_COST = {
    "postgresql": _known_cost(postgresql_insert(ledger)),
    "sqlite": _known_cost(sqlite_insert(ledger)),
}
# A call cut off by a dead worker, at its worst case: a row its worker wrote stays.
_RECORD_CUT_OFF_COST = {
    "postgresql": postgresql_insert(ledger).on_conflict_do_nothing(),
    "sqlite": sqlite_insert(ledger).on_conflict_do_nothing(),
}


def record_cost(database_url: str) -> Any:
    """Write a call's row in the cost ledger, over the unknown one a sweep may have written."""
    return _of_dialect(database_url, _RECORD_COST)


def record_cut_off_cost(database_url: str) -> Any:
    """Write a cut-off call's row in the cost ledger, unless its worker wrote one."""
    return _of_dialect(database_url, _RECORD_CUT_OFF_COST)


def _of_dialect(database_url: str, statements: dict[str, Any]) -> Any:
    dialect = database_url.split(":", 1)[0].split("+", 1)[0]
    try:
        return statements[dialect]
    except KeyError:
        raise ConfigurationError(
            f"agentyard's audit database is PostgreSQL or SQLite, not {dialect!r}"
        ) from None


INSERT_TRACE = insert(traces)

# The workflow row, locked until the transaction ends, touched and charged for a call in the
# same statement (an UPDATE takes the row lock on PostgreSQL and the write lock on SQLite).
LOCK_WORKFLOW = (
    update(workflows)
    .where(workflows.c.id == bindparam("w_id"))
    .values(
        updated_at=bindparam("updated_at"),
        cost_micro=workflows.c.cost_micro
        + bindparam("add_cost", type_=workflows.c.cost_micro.type),
    )
    .returning(
        workflows.c.id,
        workflows.c.name,
        workflows.c.status,
        workflows.c.priority,
        workflows.c.input,
        workflows.c.budget_micro,
        workflows.c.cost_micro,
        workflows.c.deadline_at,
        workflows.c.created_at,
    )
)


def _set(table: Table, *names: str) -> dict[str, Any]:
    return {name: bindparam(name, type_=table.c[name].type) for name in names}


# What the coordinator's planner reads of a step, and what it may change (orchestration/planner.py)
PLANNED_STEP_COLUMNS = (
    "status",
    "ran_by",
    "attempt",
    "agent_attempt",
    "request_id",
    "prompt",
    "history",
    "due_at",
    "lease_until",
    "dispatched_at",
    "finished_at",
)
STEP_STATE_COLUMNS = (
    "id",
    "position",
    "agent_id",
    "parent_step_id",
    "node",
    "iteration",
    "branch",
    *PLANNED_STEP_COLUMNS,
    "output",
    "error",
    "error_kind",
    "error_retryable",
    "retry_after_s",
)
STEPS_OF_WORKFLOW = (
    select(*(steps.c[name] for name in STEP_STATE_COLUMNS))
    .where(steps.c.workflow_id == bindparam("w_id"))
    .order_by(steps.c.position)
)
SAVE_STEP = (
    update(steps)
    .where(steps.c.id == bindparam("w_id"))
    .values(**_set(steps, *PLANNED_STEP_COLUMNS))
)
SAVE_WORKFLOW = (
    update(workflows)
    .where(workflows.c.id == bindparam("w_id"))
    .values(**_set(workflows, "status", "output", "error", "finished_at"))
)
# Whether an attempt's result is on record (its trace), after a commit whose outcome was lost.
TRACE_OF_ATTEMPT = select(traces.c.id).where(
    traces.c.step_id == bindparam("w_step"), traces.c.attempt == bindparam("w_attempt")
)
INSERT_WORKFLOW = insert(workflows)
INSERT_STEP = insert(steps)
