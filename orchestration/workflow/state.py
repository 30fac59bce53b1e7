"""The plain states a decision reads and changes: a run, its steps, its node runs and their frames.

A run's steps are created when their node becomes ready. Each composite node (a loop, a fan-out,
a parallel, a route) that starts gets a node run, and each sequence of nodes it runs (a loop's
iteration, a branch) a frame. A frame has a scope, the name its nodes' rows carry: ``''`` for the
top level, else the frames it is nested in, outermost first (``fan_out1#4;fan_out1/loop1#2``: the
second iteration of the loop inside the fifth branch of ``fan_out1``). Nothing here touches a
database: ``store.py`` says how states are found and kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bus.envelope import AgentMessage
from storage.models import ApprovalStatus, FrameStatus, NodeRunStatus, StepStatus

TOP = ""  # the scope of the workflow's own nodes
SUMMARY = "~summary"  # the node of a summarizer's step ends so: no node of a graph can


@dataclass(slots=True)
class RunState:
    """The columns of a workflow row that a decision reads or changes."""

    id: str
    name: str
    status: str
    priority: int
    input: str
    budget_micro: int | None = None
    cost_micro: int = 0  # every call so far, the one just recorded included
    deadline_at: datetime | None = None
    created_at: datetime | None = None
    output: str | None = None
    error: str | None = None
    finished_at: datetime | None = None

    def remaining_micro(self) -> int | None:
        """What the run's budget has left (None: the run has no budget)."""
        return None if self.budget_micro is None else self.budget_micro - self.cost_micro


@dataclass(slots=True)
class StepState:
    """The columns of a step row that a decision reads or changes."""

    id: str
    position: int
    agent_id: str
    parent_step_id: str | None = None  # the step whose output this one takes, if a step's
    node: str | None = None  # its node in the run's graph (None: a run from before graphs)
    iteration: int | None = None  # 1-based, in a loop
    branch: int | None = None  # 0-based, in a fan-out or a parallel
    scope: str = TOP
    status: str = StepStatus.PENDING.value
    ran_by: str | None = None
    attempt: int = 0
    agent_attempt: int = 0
    request_id: str | None = None
    prompt: str | None = None
    history: list[list[str]] | None = None
    preamble: str | None = None  # the run's summary, marked as data, sent before its history
    output: str | None = None
    data: Any = None  # the output parsed as its agent's output_schema
    checks: list[dict[str, Any]] | None = None  # every verdict on its answers (CheckResult JSON)
    provenance: list[dict[str, Any]] | None = None  # where each piece of its prompt came from
    findings: list[dict[str, Any]] | None = None  # injections suspected in what it was given
    reasks: int = 0  # refused answers asked for again, on the current agent
    error: str | None = None
    error_kind: str | None = None
    error_retryable: bool = False
    retry_after_s: float | None = None
    due_at: datetime | None = None
    lease_until: datetime | None = None
    dispatched_at: datetime | None = None
    finished_at: datetime | None = None

    @property
    def agent(self) -> str:
        """The agent that runs (or ran) the current attempt: a fallback, once one took over."""
        return self.ran_by or self.agent_id


@dataclass(slots=True)
class NodeRunState:
    """One run of a composite node in a frame. ``progress`` is its kind's own state (a loop's
    iteration and drafts, a fan-out's counters, a route's label), kept as JSON."""

    id: str
    node: str
    scope: str
    kind: str
    input: str
    input_label: str
    started_at: datetime
    input_source: str | None = None  # the step or node run whose output its input is
    status: str = NodeRunStatus.RUNNING.value
    output: str | None = None
    error: str | None = None
    error_kind: str | None = None
    progress: dict[str, Any] = field(default_factory=dict)
    finished_at: datetime | None = None

    @property
    def running(self) -> bool:
        return self.status == NodeRunStatus.RUNNING.value


@dataclass(slots=True)
class FrameState:
    """One sequence of nodes a node run runs: an iteration, a branch."""

    id: str
    node_run_id: str
    index: int  # a loop's iteration (1-based), a branch (0-based)
    scope: str
    input: str
    input_label: str
    input_source: str | None = None  # the step or node run whose output its input is
    status: str = FrameStatus.WAITING.value
    first_output: str | None = None  # the output of its first node: a loop's draft
    output: str | None = None
    error: str | None = None
    error_kind: str | None = None
    held_micro: int = 0  # its worst case, counted against the run's budget while it runs
    started_at: datetime | None = None
    finished_at: datetime | None = None


@dataclass(slots=True)
class ApprovalState:
    """The columns of an approval row a decision reads or changes: a person's approval of what
    a gate passes on (``kind`` ``gate``), or of a tool call (``tool``), bound to the hash of
    ``subject``, what is approved (see ``storage.models.ApprovalRow``)."""

    id: str
    gate: str
    scope: str
    node: str
    kind: str
    on_timeout: str
    subject: str
    subject_hash: str
    requested_at: datetime
    source_id: str | None = None  # the step or node run whose output the subject is
    status: str = ApprovalStatus.REQUESTED.value
    requests: int = 1
    request_id: str | None = None  # the audit message that asked for it
    due_at: datetime | None = None
    decided_at: datetime | None = None
    decided_by: str | None = None
    note: str | None = None
    applied_at: datetime | None = None  # when the run went on from the decision

    @property
    def waiting(self) -> bool:
        return self.status == ApprovalStatus.REQUESTED.value


@dataclass(frozen=True, slots=True)
class StepContext:
    """What a step's agent reads, composed when the step is made: the run's summary (marked as
    data) if it needs one, its earlier exchanges (prompt, answer), oldest first, and its prompt."""

    prompt: str
    history: list[list[str]] | None
    preamble: str | None = None
    summary: StepState | None = None  # the summary step the preamble is the output of


@dataclass(frozen=True, slots=True)
class Handoff:
    """What a node is given: a text, and what the prompt of a step that takes it calls it
    ("Output of the previous step (writer)", "Item 3 of 12"); an empty label gives the text
    alone (the run's first step is given the request). ``source`` is the id of the step or node
    run whose output the text is, if it is one's."""

    label: str
    text: str
    source: str | None = None


@dataclass(frozen=True, slots=True)
class Failure:
    """Why a node or a frame did not finish. ``kind``: ``budget`` (a spend cap refused a call, or
    the run's budget could not hold what was left to start), ``loop_limit``, or ``error``.
    ``output`` is what it produced before it stopped, if anything worth keeping."""

    kind: str
    message: str
    output: str | None = None


@dataclass
class Plan:
    """What one decision changed: the store keeps the states, the coordinator routes the
    messages once the transaction commits, and logs the events. ``audit`` holds messages for
    the audit trail alone (an approval asked for, decided), each with when it was delivered
    (None: not yet), recorded and never routed; ``requested`` the approvals it asked for, for
    the webhook the coordinator calls once they are on record."""

    run_changed: bool = False
    messages: list[AgentMessage] = field(default_factory=list)
    events: list[tuple[str, dict[str, object]]] = field(default_factory=list)
    audit: list[tuple[AgentMessage, datetime | None]] = field(default_factory=list)
    requested: list[ApprovalState] = field(default_factory=list)


def summary_node(last: str) -> str:
    """The node name of the summary step of everything up to ``last`` (a node's name), in the
    frame ``last`` ran in."""
    return f"{last}{SUMMARY}"


def is_summary(node: str | None) -> bool:
    """Whether a step of node ``node`` is a summarizer's (the run's summary), not a graph
    node's."""
    return node is not None and node.endswith(SUMMARY)


def scope_of(parent: str, node: str, index: int) -> str:
    """The scope of frame ``index`` of ``node``'s run in the frame ``parent``."""
    own = f"{node}#{index}"
    return own if parent == TOP else f"{parent};{own}"


def frames_of_scope(scope: str) -> list[tuple[str, int]]:
    """``(node, index)`` of every frame ``scope`` is nested in, outermost first."""
    if scope == TOP:
        return []
    parts = []
    for part in scope.split(";"):
        node, _, index = part.rpartition("#")
        parts.append((node, int(index)))
    return parts


def parent_scope(scope: str) -> str:
    """The scope of the frame that holds the node run whose frame ``scope`` is."""
    return scope.rpartition(";")[0]


def describe_scope(scope: str) -> str:
    """A frame's scope in words: 'fan_out1 branch 5, loop1 iteration 2' ('' at the top)."""
    parts = []
    for node, index in frames_of_scope(scope):
        name = node.rsplit("/", 1)[-1]
        if name.rstrip("0123456789") == "loop":
            parts.append(f"{name} iteration {index}")
        else:
            parts.append(f"{name} branch {index + 1}")
    return ", ".join(parts)
