"""The tables: PostgreSQL is the truth about every workflow, step, message and model call.

Money is stored as integer micro-dollars (``*_micro``); it and every token count (``*_tokens``)
in 64 bits (BIGINT), since a budget over $2 147 is over 2**31 micro-dollars. Times are UTC.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, overload

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Index,
    Text,
    UniqueConstraint,
    false,
)
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


@overload
def as_utc(moment: datetime) -> datetime: ...
@overload
def as_utc(moment: None) -> None: ...
def as_utc(moment: datetime | None) -> datetime | None:
    """SQLite hands datetimes back naive; every value agentyard writes is UTC."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def day_of(moment: datetime) -> int:
    """UTC days since the epoch: the period of the daily spend caps."""
    return int(as_utc(moment).timestamp()) // 86400


def new_id() -> str:
    return str(uuid.uuid4())


def _count(**field: Any) -> Any:
    """A column of micro-dollars or tokens: 64 bits, since sums of them can pass 2**31."""
    return Field(sa_type=BigInteger, **field)


def _when(*, index: bool = False) -> Any:
    return Field(default=None, sa_column=Column(DateTime(timezone=True), index=index))


class WorkflowStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    WAITING_APPROVAL = "waiting_approval"  # a gate waits for a person's decision
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    BUDGET_EXCEEDED = "budget_exceeded"  # a call would have broken a spend cap: not made
    TIMED_OUT = "timed_out"  # its deadline passed before it finished
    REJECTED = "rejected"  # a person (or a gate's timeout) rejected what a gate was to pass on

    @property
    def finished(self) -> bool:
        return self in (
            WorkflowStatus.SUCCEEDED,
            WorkflowStatus.FAILED,
            WorkflowStatus.BUDGET_EXCEEDED,
            WorkflowStatus.TIMED_OUT,
            WorkflowStatus.REJECTED,
        )

    @classmethod
    def unfinished(cls) -> list[str]:
        """The statuses of a run still under way, as stored: what the sweeps look among."""
        return [status.value for status in cls if not status.finished]


class StepStatus(StrEnum):
    PENDING = "pending"  # waiting for its turn, or for a retry's due time
    DISPATCHED = "dispatched"  # a request is on the agent's queue
    RUNNING = "running"  # a worker claimed this attempt and holds its lease
    ATTEMPT_FAILED = "attempt_failed"  # the coordinator decides: retry, fallback or fail
    SUCCEEDED = "succeeded"
    FAILED = "failed"

    @property
    def finished(self) -> bool:
        return self in (StepStatus.SUCCEEDED, StepStatus.FAILED)


# Workflow and step rows are updated in place several times per step (a message row once). Their
# indexes cover only columns those updates leave alone (ids, names, a workflow's status, which
# changes once at the end), and pages keep some room free, so PostgreSQL can make the updates
# HOT: no new index entries, far less write work. The sweep reaches steps through unfinished
# workflows.
_UPDATED_IN_PLACE = {"postgresql_with": {"fillfactor": 80}}


class WorkflowRow(SQLModel, table=True):
    __tablename__ = "workflows"
    __table_args__ = (_UPDATED_IN_PLACE,)

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    team: str = Field(max_length=200, index=True)
    name: str = Field(max_length=200, index=True)
    status: str = Field(default=WorkflowStatus.PENDING.value, max_length=32, index=True)
    priority: int = 5
    input: str = Field(sa_column=Column(Text, nullable=False))
    output: str | None = Field(default=None, sa_column=Column(Text))
    error: str | None = Field(default=None, sa_column=Column(Text))
    budget_micro: int | None = _count(default=None)
    cost_micro: int = _count(default=0)
    deadline_at: datetime | None = _when()
    created_at: datetime = Field(
        default_factory=utcnow,
        sa_column=Column(DateTime(timezone=True), nullable=False, index=True),
    )
    updated_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
    finished_at: datetime | None = _when()
    graph: dict[str, Any] | None = Field(
        default=None,
        sa_column=Column(JSON(none_as_null=True)),
        description="The workflow's graph as it was when the run was submitted "
        "(orchestration/workflow/graph.py): a run in flight keeps its definition across deploys.",
    )
    facts: list[str] | None = Field(
        default=None,
        sa_column=Column(JSON(none_as_null=True)),
        description="The ground truth the run was submitted with, for its checks.",
    )


class StepRow(SQLModel, table=True):
    __tablename__ = "steps"
    __table_args__ = (
        # Also the index by which a workflow's steps are found, in the order they were made.
        UniqueConstraint("workflow_id", "position", name="uq_steps_workflow_position"),
        # A node runs once in each frame (the top level, a loop's iteration, a branch): the
        # guard against making a step twice, and how the steps of a frame are found.
        UniqueConstraint("workflow_id", "scope", "node", name="uq_steps_workflow_scope_node"),
        _UPDATED_IN_PLACE,
    )

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    workflow_id: str = Field(foreign_key="workflows.id", max_length=36)
    position: int
    agent_id: str = Field(max_length=200, description="The agent the workflow asked for.")
    parent_step_id: str | None = Field(
        default=None,
        max_length=36,
        description="The step whose output this one takes (the previous one of a sequence).",
    )
    node: str | None = Field(
        default=None, max_length=300, description="Its node in the run's graph, e.g. loop1/editor."
    )
    iteration: int | None = Field(default=None, description="1-based, in a loop; else None.")
    branch: int | None = Field(
        default=None, description="0-based, in a fan-out or a parallel; else None."
    )
    scope: str = Field(
        default="",
        max_length=1000,
        sa_column_kwargs={"server_default": ""},
        description="The frame it runs in: '' for the top level, else the frames it is nested "
        "in, outermost first, e.g. 'fan_out1#4;fan_out1/loop1#2' (see orchestration/workflow).",
    )
    ran_by: str | None = Field(
        default=None, max_length=200, description="The agent that ran the latest attempt."
    )
    status: str = Field(default=StepStatus.PENDING.value, max_length=32)
    attempt: int = Field(default=0, description="Attempts dispatched so far; 1 for the first.")
    request_id: str | None = Field(
        default=None, max_length=36, description="The message carrying the current attempt."
    )
    claim_token: str | None = Field(
        default=None, max_length=36, description="Which delivery claimed the current attempt."
    )
    agent_attempt: int = Field(default=0, description="Attempts on the agent in `ran_by`.")
    prompt: str | None = Field(
        default=None,
        sa_column=Column(Text),
        description="The user message of the latest attempt, composed when it was dispatched.",
    )
    history: list[list[str]] | None = Field(
        default=None,
        sa_column=Column(JSON(none_as_null=True)),
        description="The agent's earlier exchanges in this run, [prompt, answer], sent first.",
    )
    preamble: str | None = Field(
        default=None,
        sa_column=Column(Text),
        description="The run's summary of earlier steps (marked as data), sent before its "
        "history: written by the workflow's summarizer once their text no longer fitted.",
    )
    output: str | None = Field(default=None, sa_column=Column(Text))
    data: Any = Field(
        default=None,
        sa_column=Column(JSON(none_as_null=True)),
        description="The output parsed as its agent's output_schema (JSON data), if it has one.",
    )
    checks: list[dict[str, Any]] | None = Field(
        default=None,
        sa_column=Column(JSON(none_as_null=True)),
        description="Every verdict on its answers: [{name, ok, reason, attempt}], in order.",
    )
    provenance: list[dict[str, Any]] | None = Field(
        default=None,
        sa_column=Column(JSON(none_as_null=True)),
        description="Where each piece of its prompt came from, and how far it is trusted: "
        "[{source, trust}].",
    )
    findings: list[dict[str, Any]] | None = Field(
        default=None,
        sa_column=Column(JSON(none_as_null=True)),
        description="Injection attempts suspected in the text its prompt was made from: "
        "[{kind, source, score, action, evidence}].",
    )
    reasks: int = Field(
        default=0,
        sa_column_kwargs={"server_default": "0"},
        description="How often a refused answer was asked for again, on the current agent.",
    )
    error: str | None = Field(default=None, sa_column=Column(Text))
    error_kind: str | None = Field(default=None, max_length=64)
    error_retryable: bool = False
    retry_after_s: float | None = None
    input_tokens: int = _count(default=0)
    output_tokens: int = _count(default=0)
    cache_creation_tokens: int = _count(default=0)
    cache_creation_1h_tokens: int = _count(
        default=0, description="The part of cache_creation_tokens written with the 1-hour TTL."
    )
    cache_read_tokens: int = _count(default=0)
    cost_micro: int = _count(default=0, description="Every attempt's cost, failed ones included.")
    due_at: datetime | None = _when()
    lease_until: datetime | None = _when()
    dispatched_at: datetime | None = _when()
    started_at: datetime | None = _when()
    finished_at: datetime | None = _when()


class NodeRunStatus(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class NodeRunRow(SQLModel, table=True):
    """One run of a composite node (a loop, a fan-out, a parallel, a route) in its frame: its
    input, its progress (the kind's own counters, kept as JSON so that the coordinator's work per
    event stays flat), and what it came to."""

    __tablename__ = "node_runs"
    __table_args__ = (
        UniqueConstraint("workflow_id", "scope", "node", name="uq_node_runs_workflow_scope_node"),
        _UPDATED_IN_PLACE,
    )

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    workflow_id: str = Field(foreign_key="workflows.id", max_length=36)
    node: str = Field(max_length=300, description="Its node in the run's graph, e.g. loop1.")
    scope: str = Field(max_length=1000, description="The frame it runs in ('' at the top).")
    kind: str = Field(max_length=32, description="loop, fan_out, parallel or route.")
    status: str = Field(default=NodeRunStatus.RUNNING.value, max_length=32)
    input: str = Field(sa_column=Column(Text, nullable=False))
    input_label: str = Field(default="", sa_column=Column(Text, nullable=False))
    input_source: str | None = Field(
        default=None,
        max_length=36,
        description="The step or node run whose output its input is, if it is one's.",
    )
    output: str | None = Field(default=None, sa_column=Column(Text))
    error: str | None = Field(default=None, sa_column=Column(Text))
    error_kind: str | None = Field(default=None, max_length=64)
    progress: dict[str, Any] = Field(
        default_factory=dict,
        sa_column=Column(JSON, nullable=False),
        description="The kind's own state: a loop's iteration and last drafts, a fan-out's "
        "counters, a route's label.",
    )
    started_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    finished_at: datetime | None = _when()


class FrameStatus(StrEnum):
    WAITING = "waiting"  # made, not started yet (a branch beyond max_parallel, or unaffordable)
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class FrameRow(SQLModel, table=True):
    """One sequence of nodes run inside a composite node: a loop's iteration, a fan-out's or a
    parallel's branch, a route's chosen branch. Its input is kept here (a fan-out's item), so
    starting the next branch reads one row; so are its outputs, which the join reads once."""

    __tablename__ = "frames"
    __table_args__ = (
        UniqueConstraint("workflow_id", "scope", name="uq_frames_workflow_scope"),
        UniqueConstraint("node_run_id", "index", name="uq_frames_node_run_index"),
        _UPDATED_IN_PLACE,
    )

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    workflow_id: str = Field(foreign_key="workflows.id", max_length=36)
    node_run_id: str = Field(foreign_key="node_runs.id", max_length=36)
    index: int = Field(description="A loop's iteration (1-based), a branch (0-based).")
    scope: str = Field(max_length=1000, description="The frame's own name: its nodes' scope.")
    status: str = Field(default=FrameStatus.WAITING.value, max_length=32)
    input: str = Field(sa_column=Column(Text, nullable=False))
    input_label: str = Field(default="", sa_column=Column(Text, nullable=False))
    input_source: str | None = Field(
        default=None,
        max_length=36,
        description="The step or node run whose output its input is, if it is one's.",
    )
    first_output: str | None = Field(
        default=None,
        sa_column=Column(Text),
        description="The output of its first node (a loop's draft).",
    )
    output: str | None = Field(default=None, sa_column=Column(Text))
    error: str | None = Field(default=None, sa_column=Column(Text))
    error_kind: str | None = Field(default=None, max_length=64)
    held_micro: int = _count(
        default=0, description="Its worst case, counted against the run's budget while it runs."
    )
    started_at: datetime | None = _when()
    finished_at: datetime | None = _when()


class ToolTurnRow(SQLModel, table=True):
    """One answer of the model in a step's tool loop that asked for tools: kept before any of its
    tools runs, so that an attempt that starts again (after a crash, a redelivery) reads it
    rather than asking the model anew (an answer that arrived is used, and paid for once)."""

    __tablename__ = "tool_turns"
    __table_args__ = (UniqueConstraint("step_id", "turn", name="uq_tool_turns_step_turn"),)

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    workflow_id: str = Field(foreign_key="workflows.id", max_length=36, index=True)
    step_id: str = Field(foreign_key="steps.id", max_length=36)
    turn: int = Field(description="0 for the step's first call, then one more per answer.")
    attempt: int = Field(description="The attempt of the step that made the call.")
    agent_id: str = Field(max_length=63, description="The agent that answered.")
    content: list[dict[str, Any]] = Field(
        sa_column=Column(JSON, nullable=False),
        description="The answer's content blocks (text, tool_use, thinking) as the API gave them.",
    )
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


TOOL_USE = "tool_use"  # the outcome of a traced answer that asked for tools


class ToolCallStatus(StrEnum):
    AWAITING_APPROVAL = "awaiting_approval"  # not run: a person is to approve it first
    STARTED = "started"  # on record before it ran: finished, or its outcome is unknown
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # it raised, timed out, or was given invalid arguments: an is_error result


class ToolCallRow(SQLModel, table=True):
    """One tool call of a step's tool loop: recorded as started before it runs, and as finished,
    with its result, before the model sees the result. A finished call is replayed from here and
    never runs again; a call started but not finished runs again only if its tool is
    idempotent, with the same idempotency key."""

    __tablename__ = "tool_calls"
    __table_args__ = (
        UniqueConstraint("step_id", "turn", "index", name="uq_tool_calls_step_turn_index"),
        _UPDATED_IN_PLACE,
    )

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    workflow_id: str = Field(foreign_key="workflows.id", max_length=36, index=True)
    step_id: str = Field(foreign_key="steps.id", max_length=36)
    turn: int = Field(description="The model's answer that asked for it.")
    index: int = Field(description="Its place among that answer's tool calls, from 0.")
    tool_use_id: str = Field(max_length=128, description="The id the model gave the call.")
    tool: str = Field(max_length=64)
    arguments: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    idempotency_key: str = Field(
        max_length=200, description="Stable across attempts: for the outside system to dedupe."
    )
    side_effects: bool = False
    idempotent: bool = False
    status: str = Field(default=ToolCallStatus.STARTED.value, max_length=32)
    runs: int = Field(default=1, description="How many times it was started.")
    result: str | None = Field(default=None, sa_column=Column(Text))
    is_error: bool = False
    attempt: int = Field(description="The attempt of the step that last started it.")
    started_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    finished_at: datetime | None = _when()
    duration_ms: float | None = None


class ApprovalStatus(StrEnum):
    REQUESTED = "requested"  # a person is asked; the run waits
    APPROVED = "approved"
    REJECTED = "rejected"
    TIMED_OUT = "timed_out"  # nobody decided by due_at: its on_timeout was applied

    @property
    def decided(self) -> bool:
        return self is not ApprovalStatus.REQUESTED


class ApprovalRow(SQLModel, table=True):
    """A person's approval, asked for and waited on as a row (no worker thread, no Celery ETA):
    of what a gate of a workflow is to pass on (``kind`` ``gate``), or of a tool call before it
    runs (``tool``). It is bound to ``subject_hash``, the hash of what is approved: a decision
    about anything else is refused. One row per gate and frame; asked again (what it follows
    changed), the row is asked anew and ``requests`` counts it."""

    __tablename__ = "approvals"
    __table_args__ = (
        UniqueConstraint("workflow_id", "scope", "node", name="uq_approvals_workflow_scope_node"),
    )

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    workflow_id: str = Field(foreign_key="workflows.id", max_length=36)
    gate: str = Field(max_length=200, description="The gate's name, or the tool's.")
    scope: str = Field(max_length=1000, description="The frame it waits in ('' at the top).")
    node: str = Field(
        max_length=300,
        description="Its node in the run's graph (for a tool call, one of the step's own).",
    )
    kind: str = Field(max_length=16, description="gate or tool.")
    status: str = Field(default=ApprovalStatus.REQUESTED.value, max_length=32, index=True)
    subject: str = Field(
        sa_column=Column(Text, nullable=False),
        description="What is to be approved, in full: the output a gate passes on (and what it "
        "passes on once approved), or a tool and its arguments.",
    )
    subject_hash: str = Field(
        max_length=64, description="SHA-256 (hex) of kind, gate or tool, and subject."
    )
    source_id: str | None = Field(
        default=None,
        max_length=36,
        description="The step or node run whose output the subject is (a tool call's step).",
    )
    on_timeout: str = Field(max_length=16, description="reject, approve or fail, at due_at.")
    requests: int = Field(default=1, description="How many times it was asked for.")
    request_id: str | None = Field(
        default=None, max_length=36, description="The audit message that asked for it."
    )
    requested_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    due_at: datetime | None = _when()
    decided_at: datetime | None = _when()
    decided_by: str | None = Field(default=None, max_length=200)
    note: str | None = Field(default=None, sa_column=Column(Text))
    applied_at: datetime | None = Field(
        default=None,
        sa_column=Column(DateTime(timezone=True)),
        description="When the run went on from the decision (None: it is still to).",
    )


class MessageRow(SQLModel, table=True):
    """Every message on the bus, written before it is routed (audit first, then route).

    ``delivered_at`` is stamped by the consumer in the transaction where it acts on the message.
    A message a crash kept off the broker is not routed again from here: the maintenance sweep
    reconciles from the workflow and step rows, which are the truth (see ``maintenance``).
    """

    __tablename__ = "messages"
    __table_args__ = (_UPDATED_IN_PLACE,)  # stamped delivered once, in place

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    workflow_id: str | None = Field(default=None, index=True, max_length=36)
    step_id: str | None = Field(default=None, max_length=36)
    type: str = Field(max_length=32)
    sender: str = Field(max_length=200)
    recipients: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    task: str = Field(max_length=255)
    queue: str = Field(max_length=255)
    priority: int = 5
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
    delivered_at: datetime | None = _when()
    # Published again (by the acknowledgement sweeper) as attempt + 1, maybe escalated.
    attempt: int = 1
    requires_ack: bool = False
    ack_timeout_s: float | None = None


class MessageAckRow(SQLModel, table=True):
    """A recipient's acknowledgement of a message that asked for one (``requires_ack``)."""

    __tablename__ = "message_acks"

    message_id: str = Field(primary_key=True, max_length=36)
    recipient: str = Field(primary_key=True, max_length=200)
    attempt: int = Field(description="The attempt that was current when the ack came.")
    acked_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class TraceRow(SQLModel, table=True):
    """One model call: what went in, what came out, what it cost. The record of a decision."""

    __tablename__ = "traces"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    workflow_id: str = Field(index=True, max_length=36)
    step_id: str = Field(index=True, max_length=36)
    parent_step_id: str | None = Field(default=None, max_length=36)
    agent_id: str = Field(max_length=200, index=True)
    requested_agent_id: str | None = Field(
        default=None,
        max_length=200,
        description="The agent the workflow asked for, when a fallback made this call instead.",
    )
    trace_id: str | None = Field(
        default=None, max_length=32, description="The OpenTelemetry trace of the call (hex)."
    )
    span_id: str | None = Field(
        default=None, max_length=16, description="The call's step span in that trace (hex)."
    )
    model: str = Field(max_length=200)
    attempt: int
    system_prompt: str = Field(default="", sa_column=Column(Text, nullable=False))
    prompt: str = Field(default="", sa_column=Column(Text, nullable=False))
    output: str | None = Field(default=None, sa_column=Column(Text))
    reasoning: str | None = Field(default=None, sa_column=Column(Text))
    # succeeded, an error's kind, or TOOL_USE: an answer of a tool loop that asked for tools
    outcome: str = Field(max_length=64)
    error: str | None = Field(default=None, sa_column=Column(Text))
    input_tokens: int = _count(default=0)
    output_tokens: int = _count(default=0)
    cache_creation_tokens: int = _count(default=0)
    cache_creation_1h_tokens: int = _count(
        default=0, description="The part of cache_creation_tokens written with the 1-hour TTL."
    )
    cache_read_tokens: int = _count(default=0)
    cost_micro: int = _count(default=0)
    latency_ms: float = 0.0
    wire_ms: float | None = Field(
        default=None,
        description="From the request sent to the answer read: the provider's time at most (a "
        "worker slow to read an answer already there adds to it); None when not measured.",
    )
    late: bool = Field(
        default=False,
        sa_column_kwargs={"server_default": false()},
        description="The answer came after the agent's deadline (the worker was slow to read "
        "it); it was used all the same.",
    )
    started_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    finished_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class CostLedgerRow(SQLModel, table=True):
    """Every model call's cost, one row per attempt: the book the Redis spend counters are kept
    from, and rebuilt from (``agentyard costs rebuild``)."""

    __tablename__ = "cost_ledger"
    __table_args__ = (Index("ix_cost_ledger_team_day", "team", "day"),)

    id: str = Field(primary_key=True, max_length=80, description="'<step id>:<attempt>'")
    team: str = Field(max_length=200)
    workflow_id: str = Field(max_length=36, index=True)
    workflow: str = Field(max_length=200, description="The workflow type's name.")
    step_id: str = Field(max_length=36)
    agent_id: str = Field(max_length=200)
    model: str = Field(max_length=200)
    attempt: int
    cost_micro: int = _count()
    unknown: bool = Field(
        default=False,
        sa_column_kwargs={"server_default": false()},
        description="The call was cut off (its worker died before recording it): what it cost "
        "is unknown, and cost_micro is its worst case, the most it can have cost.",
    )
    day: int = Field(description="UTC days since the epoch, as the daily caps count them.")
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class CostAlertRow(SQLModel, table=True):
    """A run that cost far more than its workflow type usually does (one row per run)."""

    __tablename__ = "cost_alerts"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    team: str = Field(max_length=200)
    workflow_id: str = Field(max_length=36, unique=True)
    workflow: str = Field(max_length=200, index=True)
    cost_micro: int = _count(description="The run's cost when the alert was raised.")
    mean_micro: int = _count()
    deviation_micro: int = _count()
    threshold_micro: int = _count()
    runs: int = Field(description="Finished runs the mean and deviation were taken over.")
    finished: bool = Field(description="False: raised while the run was still under way.")
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class DeadLetterRow(SQLModel, table=True):
    """A message no consumer could act on (not JSON, not an agentyard message, an unknown task,
    no handler, a handler that failed) or that was never acknowledged after its last attempt:
    set aside with the reason, never retried on its own. One that names its message can be
    published again by hand (``agentyard deadletters --republish``)."""

    __tablename__ = "dead_letters"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    task: str | None = Field(default=None, max_length=255)
    queue: str | None = Field(default=None, max_length=255)
    reason: str = Field(sa_column=Column(Text, nullable=False))
    body: str = Field(default="", sa_column=Column(Text, nullable=False))
    # Set for a message given up after its last unacknowledged attempt: it can be published again.
    message_id: str | None = Field(default=None, max_length=36)
    recipient: str | None = Field(default=None, max_length=200)
    received_at: datetime = Field(
        sa_column=Column(DateTime(timezone=True), nullable=False, index=True)
    )
    republished_at: datetime | None = _when()
