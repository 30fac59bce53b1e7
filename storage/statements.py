"""The statements of the hot path, built once with bound parameters and run as Core.

Building a SQLAlchemy expression and its cache key on every call, and going through the ORM's
bookkeeping, cost more CPU than the database work itself (see docs/performance.md). These are
the statements every step runs, each executed with a dict of parameters in the caller's
transaction by ``storage.executor``. Parameters for WHERE clauses are prefixed ``w_``
(SQLAlchemy reserves column names for the SET clause).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table, and_, bindparam, case, func, insert, or_, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from storage.errors import ConfigurationError
from storage.models import (
    CostLedgerRow,
    FrameRow,
    MessageAckRow,
    MessageRow,
    NodeRunRow,
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
node_runs: Table = NodeRunRow.__table__  # type: ignore[attr-defined]
frames: Table = FrameRow.__table__  # type: ignore[attr-defined]

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
    .returning(
        steps.c.prompt,
        steps.c.history,
        steps.c.preamble,
        steps.c.agent_id,
        steps.c.parent_step_id,
    )
)

# What the coordinator's interpreter reads of a step, and what it may change
# (orchestration/workflow/interpreter.py)
PLANNED_STEP_COLUMNS = (
    "parent_step_id",
    "status",
    "ran_by",
    "attempt",
    "agent_attempt",
    "request_id",
    "prompt",
    "history",
    "preamble",
    "due_at",
    "lease_until",
    "dispatched_at",
    "finished_at",
    # a checked answer: kept, refused (and asked for again), or failed for good
    "output",
    "data",
    "checks",
    "provenance",
    "findings",
    "reasks",
    "error",
    "error_kind",
)
STEP_STATE_COLUMNS = (
    "id",
    "position",
    "agent_id",
    "node",
    "iteration",
    "branch",
    "scope",
    *PLANNED_STEP_COLUMNS,
    "error_retryable",
    "retry_after_s",
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
# Both return the step as the coordinator's interpreter reads it, to decide what follows.
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
    .returning(*(steps.c[name] for name in STEP_STATE_COLUMNS))
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
    .returning(*(steps.c[name] for name in STEP_STATE_COLUMNS))
)

# A turn of a tool loop that asked for tools, recorded while the attempt goes on: its usage
# added, the lease held for one more turn; no row when the attempt no longer holds the step
STEP_TURN = (
    update(steps)
    .where(*_STILL_RUNNING)
    .values(
        **{name: value for name, value in _ADD_USAGE.items() if name != "lease_until"},
        lease_until=bindparam("lease_until"),
    )
    .returning(steps.c.id)
)
# The step held longer by the attempt that holds it (a replayed turn's tools about to run)
STEP_HOLD = (
    update(steps)
    .where(*_STILL_RUNNING)
    .values(lease_until=bindparam("lease_until"))
    .returning(steps.c.id)
)
# A run charged a call's cost without a decision (a turn of a tool loop)
ADD_WORKFLOW_COST = (
    update(workflows)
    .where(workflows.c.id == bindparam("w_id"))
    .values(
        cost_micro=workflows.c.cost_micro + bindparam("add_cost", type_=workflows.c.cost_micro.type)
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


_STEP_STATE = tuple(steps.c[name] for name in STEP_STATE_COLUMNS)
# A decision reads the steps of at most this many frames at once: the frame of the node it
# enters and the frames that hold it (a graph nests MAX_DEPTH = 3 deep, under the top level).
SCOPES_AT_ONCE = 4
_SCOPES: list[Any] = [bindparam(f"w_scope{i}") for i in range(SCOPES_AT_ONCE)]


def scopes_params(scopes: list[str]) -> dict[str, str]:
    """The parameters of a statement over up to ``SCOPES_AT_ONCE`` frames, the last repeated."""
    if not 1 <= len(scopes) <= SCOPES_AT_ONCE:
        raise ValueError(f"1 to {SCOPES_AT_ONCE} scopes at once, got {len(scopes)}")
    padded = scopes + [scopes[-1]] * (SCOPES_AT_ONCE - len(scopes))
    return {f"w_scope{i}": scope for i, scope in enumerate(padded)}


# The steps of a few frames (found by the unique (workflow_id, scope, node) index).
STEPS_IN_SCOPES = (
    select(*_STEP_STATE)
    .where(steps.c.workflow_id == bindparam("w_id"), steps.c.scope.in_(_SCOPES))
    .order_by(steps.c.position)
)
# The steps that wait for a decision: a failed attempt, or a pending one (a retry, a breaker's
# wait, or a step made and never sent: by a version that made every step at submit).
UNSETTLED_STEPS = (
    select(*_STEP_STATE)
    .where(
        steps.c.workflow_id == bindparam("w_id"),
        # Not IN (...): a list of values is expanded per execution, which the psycopg path
        # (compiled once) cannot do.
        or_(
            steps.c.status == StepStatus.ATTEMPT_FAILED.value,
            steps.c.status == StepStatus.PENDING.value,
        ),
    )
    .order_by(steps.c.position)
)
# A summarizer's step (its node ends in "~summary") is the run's own, not one of its nodes'.
_A_NODES_STEP = or_(steps.c.node.is_(None), steps.c.node.not_like("%~summary"))
LAST_OUTPUT = (
    select(steps.c.output)
    .where(
        steps.c.workflow_id == bindparam("w_id"),
        steps.c.status == StepStatus.SUCCEEDED.value,
        _A_NODES_STEP,
    )
    .order_by(steps.c.position.desc())
    .limit(1)
)
STEPS_DONE = select(func.count()).where(
    steps.c.workflow_id == bindparam("w_id"),
    steps.c.status == StepStatus.SUCCEEDED.value,
    _A_NODES_STEP,
)
NEXT_POSITION = select(func.coalesce(func.max(steps.c.position), -1) + 1).where(
    steps.c.workflow_id == bindparam("w_id")
)
# The steps of a run made before graphs, in order: their agents are its sequence.
AGENTS_OF_STEPS = (
    select(steps.c.agent_id)
    .where(steps.c.workflow_id == bindparam("w_id"))
    .order_by(steps.c.position)
)
WORKFLOW_GRAPH = select(workflows.c.graph).where(workflows.c.id == bindparam("w_id"))
WORKFLOW_FACTS = select(workflows.c.facts).where(workflows.c.id == bindparam("w_id"))

# -- node runs and frames (orchestration/run_store.py) --------------------------------------------
NODE_RUN_STATE_COLUMNS = (
    "id",
    "node",
    "scope",
    "kind",
    "input",
    "input_label",
    "input_source",
    "started_at",
    "status",
    "output",
    "error",
    "error_kind",
    "progress",
    "finished_at",
)
SAVED_NODE_RUN_COLUMNS = ("status", "output", "error", "error_kind", "progress", "finished_at")
_NODE_RUN_STATE = tuple(node_runs.c[name] for name in NODE_RUN_STATE_COLUMNS)
NODE_RUN_AT = select(*_NODE_RUN_STATE).where(
    node_runs.c.workflow_id == bindparam("w_id"),
    node_runs.c.scope == bindparam("w_scope"),
    node_runs.c.node == bindparam("w_node"),
)
NODE_RUNS_IN_SCOPES = select(*_NODE_RUN_STATE).where(
    node_runs.c.workflow_id == bindparam("w_id"), node_runs.c.scope.in_(_SCOPES)
)
INSERT_NODE_RUN = insert(node_runs)
SAVE_NODE_RUN = (
    update(node_runs)
    .where(node_runs.c.id == bindparam("w_id"))
    .values(
        **{name: bindparam(name, type_=node_runs.c[name].type) for name in SAVED_NODE_RUN_COLUMNS}
    )
)

SAVED_FRAME_COLUMNS = (  # what a decision may change of a frame
    "status",
    "first_output",
    "output",
    "error",
    "error_kind",
    "held_micro",
    "started_at",
    "finished_at",
)
FRAME_STATE_COLUMNS = (
    "id",
    "node_run_id",
    "index",
    "scope",
    "input",
    "input_label",
    "input_source",
    *SAVED_FRAME_COLUMNS,
)
_FRAME_STATE = tuple(frames.c[name] for name in FRAME_STATE_COLUMNS)
# A frame and the node run that runs it, in one round trip: what a frame that finishes needs.
FRAME_AND_OWNER_AT = (
    select(*_FRAME_STATE, *(column.label(f"owner_{column.name}") for column in _NODE_RUN_STATE))
    .join(node_runs, node_runs.c.id == frames.c.node_run_id)
    .where(frames.c.workflow_id == bindparam("w_id"), frames.c.scope == bindparam("w_scope"))
)
FRAME_OF_INDEX = select(*_FRAME_STATE).where(
    frames.c.node_run_id == bindparam("w_node_run"), frames.c.index == bindparam("w_index")
)
FRAMES_OF_NODE_RUN = (
    select(*_FRAME_STATE)
    .where(frames.c.node_run_id == bindparam("w_node_run"))
    .order_by(frames.c.index)
)
INSERT_FRAME = insert(frames)
SAVE_FRAME = (
    update(frames)
    .where(frames.c.id == bindparam("w_id"))
    .values(**{name: bindparam(name, type_=frames.c[name].type) for name in SAVED_FRAME_COLUMNS})
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
# The attempt's own trace (an answer of a tool loop that asked for tools is not its end)
TRACE_OF_ATTEMPT = select(traces.c.id).where(
    traces.c.step_id == bindparam("w_step"),
    traces.c.attempt == bindparam("w_attempt"),
    traces.c.outcome != "tool_use",
)
INSERT_WORKFLOW = insert(workflows)
INSERT_STEP = insert(steps)
