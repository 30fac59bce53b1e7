"""The statements of the ``approvals`` table: what the coordinator's store reads and writes
(``orchestration/run_store.py``), what a person's decision changes, and what the sweep and
``orc.approvals.pending()`` look for (``orchestration/approvals.py``).

A row is asked for (``requested``), then decided once (``approved``, ``rejected``, or
``timed_out`` when its due time passed first); ``applied_at`` says the run went on from the
decision. Every change is made under the run's lock, and a decision is a compare-and-set on
the status and the hash of what is approved.
"""

from __future__ import annotations

from sqlalchemy import Table, and_, bindparam, insert, or_, select, update

from storage.models import ApprovalRow, ApprovalStatus, WorkflowStatus
from storage.statements import frames, node_runs, steps, workflows

approvals: Table = ApprovalRow.__table__  # type: ignore[attr-defined]

# What a decision changes of a row, and what it reads (every column but its run's id)
SAVED_APPROVAL_COLUMNS = (
    "status",
    "subject",
    "subject_hash",
    "source_id",
    "requests",
    "request_id",
    "requested_at",
    "due_at",
    "decided_at",
    "decided_by",
    "note",
    "applied_at",
)
APPROVAL_STATE_COLUMNS = (
    "id",
    "gate",
    "scope",
    "node",
    "kind",
    "on_timeout",
    *SAVED_APPROVAL_COLUMNS,
)
_STATE = tuple(approvals.c[name] for name in APPROVAL_STATE_COLUMNS)
_REQUESTED = ApprovalStatus.REQUESTED.value

# -- the coordinator's store ------------------------------------------------------------------
APPROVAL_AT = select(*_STATE).where(
    approvals.c.workflow_id == bindparam("w_id"),
    approvals.c.scope == bindparam("w_scope"),
    approvals.c.node == bindparam("w_node"),
)
# What a decision about a run is to settle: a person decided and the run has not gone on yet, or
# nobody did by the due time (compared with ``w_now``).
SETTLEABLE = or_(
    and_(approvals.c.status == _REQUESTED, approvals.c.due_at <= bindparam("w_now")),
    and_(
        # Not IN (...): a list of values is expanded per execution, which the psycopg path
        # (compiled once) cannot do.
        or_(
            approvals.c.status == ApprovalStatus.APPROVED.value,
            approvals.c.status == ApprovalStatus.REJECTED.value,
        ),
        approvals.c.applied_at.is_(None),
    ),
)
SETTLEABLE_APPROVALS = (
    select(*_STATE)
    .where(approvals.c.workflow_id == bindparam("w_id"), SETTLEABLE)
    .order_by(approvals.c.requested_at, approvals.c.id)
)
WAITING_APPROVALS = select(approvals.c.id).where(
    approvals.c.workflow_id == bindparam("w_id"), approvals.c.status == _REQUESTED
)
INSERT_APPROVAL = insert(approvals)
SAVE_APPROVAL = (
    update(approvals)
    .where(approvals.c.id == bindparam("w_id"))
    .values(
        **{name: bindparam(name, type_=approvals.c[name].type) for name in SAVED_APPROVAL_COLUMNS}
    )
)

# -- a tool call's, as the worker that is to run it reads it ------------------------------------
# (a tool call's node names its step, so it is one row whatever the frame)
APPROVAL_OF_NODE = select(*_STATE).where(
    approvals.c.workflow_id == bindparam("w_id"), approvals.c.node == bindparam("w_node")
)

# -- a person's decision ------------------------------------------------------------------------
APPROVALS_OF_GATE = (
    select(*_STATE)
    .where(approvals.c.workflow_id == bindparam("w_id"), approvals.c.gate == bindparam("w_gate"))
    .order_by(approvals.c.requested_at, approvals.c.scope)
)
GATES_OF_RUN = (
    select(approvals.c.gate)
    .where(approvals.c.workflow_id == bindparam("w_id"))
    .distinct()
    .order_by(approvals.c.gate)
)
# requested -> decided, if it still waits for this very subject
DECIDE = (
    update(approvals)
    .where(
        approvals.c.id == bindparam("w_id"),
        approvals.c.status == _REQUESTED,
        approvals.c.subject_hash == bindparam("w_hash"),
    )
    .values(
        status=bindparam("status"),
        decided_at=bindparam("decided_at"),
        decided_by=bindparam("decided_by"),
        note=bindparam("note"),
    )
)

RUN_OF = select(workflows.c.team, workflows.c.status).where(workflows.c.id == bindparam("w_id"))
# What a gate's subject was taken from, as it is now: the output of its source (a step or a node
# run), or the input of its frame (the run's own at the top level).
STEP_OUTPUT = select(steps.c.output).where(steps.c.id == bindparam("w_id"))
NODE_RUN_OUTPUT = select(node_runs.c.output).where(node_runs.c.id == bindparam("w_id"))
FRAME_INPUT = select(frames.c.input).where(
    frames.c.workflow_id == bindparam("w_id"), frames.c.scope == bindparam("w_scope")
)
RUN_INPUT = select(workflows.c.input).where(workflows.c.id == bindparam("w_id"))

# -- what waits ----------------------------------------------------------------------------------
# Read through a session (its IN list is expanded when it runs), not the prebuilt path.
PENDING = (
    select(
        *_STATE,
        approvals.c.workflow_id,
        workflows.c.team,
        workflows.c.name.label("workflow"),
    )
    .join(workflows, workflows.c.id == approvals.c.workflow_id)
    .where(approvals.c.status == _REQUESTED, workflows.c.status.in_(WorkflowStatus.unfinished()))
    .order_by(approvals.c.requested_at, approvals.c.workflow_id, approvals.c.scope)
)
