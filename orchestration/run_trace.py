"""One run as its trace records tell it: the workflow, its steps, and every model call of each.

The read model behind ``agentyard trace`` (the tree), ``agentyard graph`` (the dependency graph)
and ``orc.runs.trace(run_id)``: loaded once, read-only, from the ``workflows``, ``steps`` and
``traces`` tables. ``RunTrace`` -> ``StepTrace`` -> ``CallTrace``, all frozen.

A call is one row of ``traces``: one attempt of a step, made or refused (a spend cap or an open
breaker turns a call away; it is on record at no cost). Within a step, a call on the same agent
as the call before it is a *retry*; a call on another agent is a *fallback*. A step with no call
on record yet (pending, or dispatched and not recorded yet) is there all the same.

Prompts and outputs stay in the database unless asked for (``include_io=True``): the tree is for
operators, the audit trail is where the text lives.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from itertools import pairwise
from typing import Any

from sqlalchemy import select
from sqlmodel import Session, col

from orchestration.guards.detect import Finding
from orchestration.guards.provenance import Provenance
from orchestration.pricing import micro_to_usd
from orchestration.results import (
    ApprovalOutcome,
    NodeOutcome,
    Tokens,
    ToolCallResult,
    tool_calls_by_step,
    with_tools,
)
from orchestration.workflow.checks import CheckResult
from orchestration.workflow.gates import tool_node
from orchestration.workflow.graph import (
    FanOutNode,
    Graph,
    LoopNode,
    Node,
    ParallelNode,
    RouteNode,
    StepNode,
)
from orchestration.workflow.joins import label_of
from storage import statements
from storage.db import session_scope
from storage.errors import RunNotFound, ToolApprovalNeeded
from storage.models import ApprovalRow, StepStatus, WorkflowStatus, as_utc, utcnow

_SUCCEEDED = "succeeded"


class Link(StrEnum):
    """How a call follows the one before it in the same step."""

    FIRST = "first"  # the step's first call on record
    RETRY = "retry"  # another attempt on the same agent
    TURN = "turn"  # the next answer of the same tool loop (its attempt's, or the one after a
    # tool call waited for a person's approval)
    FALLBACK = "fallback"  # the step moved to another agent


@dataclass(frozen=True, slots=True)
class CallIO:
    """What a call was asked and answered (loaded only on request)."""

    prompt: str
    output: str | None


@dataclass(frozen=True, slots=True)
class CallTrace:
    """One model call: one attempt of a step, as its trace row records it."""

    id: str
    step_id: str
    attempt: int  # the step's attempt number, 1 for its first
    agent: str  # the agent that made (or was refused) the call
    requested_agent: str  # the agent the workflow asked for: another one means a fallback
    model: str
    outcome: str  # "succeeded", or the error's kind ("rate_limited", "breaker_open", ...)
    error: str | None
    tokens: Tokens
    cost_micro: int
    latency_ms: float
    started_at: datetime
    finished_at: datetime
    link: Link
    trace_id: str | None = None  # OpenTelemetry, hex, when the call was traced
    span_id: str | None = None
    io: CallIO | None = None
    # From the request sent to the answer read: at most the provider's time (None: not measured)
    wire_ms: float | None = None
    late: bool = False  # the answer came after the agent's deadline, and was used

    @property
    def succeeded(self) -> bool:
        return self.outcome == _SUCCEEDED

    @property
    def by_fallback(self) -> bool:
        """Whether a fallback agent made this call instead of the agent asked for."""
        return self.agent != self.requested_agent

    @property
    def cost_usd(self) -> float:
        return micro_to_usd(self.cost_micro)


@dataclass(frozen=True, slots=True)
class StepTrace:
    """One step of the run and the calls made for it, oldest first."""

    id: str
    position: int  # 0 for the first step
    agent: str  # the agent the workflow asked for
    ran_by: str | None  # the agent of the latest attempt (a fallback, once one took over)
    status: str
    attempt: int  # attempts dispatched so far
    parent_step_id: str | None
    error: str | None
    calls: tuple[CallTrace, ...] = ()
    node: str | None = None  # its node in the run's graph, e.g. "loop1/editor"
    scope: str = ""  # the frame it ran in ('' at the top; see orchestration/workflow/state.py)
    iteration: int | None = None  # 1-based, in a loop
    branch: int | None = None  # 0-based, in a fan-out or a parallel
    checks: tuple[CheckResult, ...] = ()  # every verdict on its answers, in order
    findings: tuple[Finding, ...] = ()  # injection attempts suspected in what it was given
    provenance: tuple[Provenance, ...] = ()  # where each piece of its prompt came from
    tool_calls: tuple[ToolCallResult, ...] = ()  # each tool call its agent made, in order
    tool_approvals: tuple[ApprovalOutcome, ...] = ()  # of its tool calls that waited for one

    def approval_of(self, call: ToolCallResult) -> ApprovalOutcome | None:
        """The approval ``call`` waited for, if it did."""
        node = tool_node(self.id, call.turn, call.index)
        return next((a for a in self.tool_approvals if a.node == node), None)

    @property
    def ran(self) -> bool:
        """Whether any call of this step is on record."""
        return bool(self.calls)

    @property
    def retries(self) -> int:
        """Calls beyond the first on the same agent."""
        return sum(call.link is Link.RETRY for call in self.calls)

    @property
    def agents(self) -> tuple[str, ...]:
        """The agents the step went through, in order: ``("writer", "reviewer")`` after one
        fallback. A step handed to a fallback that has not called yet counts it too."""
        chain = [self.agent]
        for name in [*(call.agent for call in self.calls), self.ran_by]:
            if name is not None and name != chain[-1]:
                chain.append(name)
        return tuple(chain)

    @property
    def fell_back(self) -> bool:
        return len(self.agents) > 1

    @property
    def tokens(self) -> Tokens:
        return Tokens.added_up(call.tokens for call in self.calls)

    @property
    def cost_micro(self) -> int:
        """Every call's cost, failed ones included."""
        return sum(call.cost_micro for call in self.calls)

    @property
    def latency_ms(self) -> float:
        """Time spent in model calls (backoff waits between attempts not included)."""
        return sum(call.latency_ms for call in self.calls)

    @property
    def in_flight(self) -> int | None:
        """The attempt dispatched or running now and not on record yet, if any."""
        under_way = self.status in (StepStatus.DISPATCHED.value, StepStatus.RUNNING.value)
        recorded = {call.attempt for call in self.calls}
        return self.attempt if under_way and self.attempt not in recorded else None

    @property
    def unrecorded_attempts(self) -> tuple[int, ...]:
        """Attempts dispatched that left no call on record and are not under way: a worker
        stopped before it recorded the call, or the broker lost the request (the sweep gave
        them up and dispatched the next)."""
        recorded = {call.attempt for call in self.calls}
        return tuple(
            n for n in range(1, self.attempt + 1) if n not in recorded and n != self.in_flight
        )


@dataclass(frozen=True, slots=True)
class FrameTrace:
    """One iteration or branch of a node run."""

    index: int  # the iteration (1-based), the branch (0-based)
    scope: str  # what its steps' ``scope`` is
    title: str  # "iteration 2", "branch 3: <its item>", "branch 'long'"
    status: str  # waiting, running, succeeded or failed
    error: str | None = None


@dataclass(frozen=True, slots=True)
class NodeTrace:
    """One run of a loop, fan-out, parallel or route, and its frames in order."""

    id: str
    outcome: NodeOutcome
    frames: tuple[FrameTrace, ...] = ()

    @property
    def node(self) -> str:
        return self.outcome.node

    @property
    def scope(self) -> str:
        return self.outcome.scope


@dataclass(frozen=True, slots=True)
class RunTrace:
    """A workflow run, its steps in order, and every call on record; for a graph, the graph it
    keeps and its node runs."""

    id: str
    team: str
    name: str
    status: str
    created_at: datetime
    finished_at: datetime | None
    error: str | None
    steps: tuple[StepTrace, ...] = field(default_factory=tuple)
    graph: Graph | None = None  # None: a run from before graphs (a sequence)
    nodes: tuple[NodeTrace, ...] = field(default_factory=tuple)
    approvals: tuple[ApprovalOutcome, ...] = field(default_factory=tuple)

    @property
    def is_graph(self) -> bool:
        """Whether the run's workflow has loops, fan-outs, parallels or routes."""
        return self.graph is not None and not self.graph.is_sequence

    def step_at(self, scope: str, node: str) -> StepTrace | None:
        """The step of ``node`` in the frame ``scope``, if one was made."""
        return next((s for s in self.steps if s.scope == scope and s.node == node), None)

    def node_at(self, scope: str, node: str) -> NodeTrace | None:
        """The run of the composite ``node`` in the frame ``scope``, if it started."""
        return next((n for n in self.nodes if n.scope == scope and n.node == node), None)

    def approval_at(self, scope: str, node: str) -> ApprovalOutcome | None:
        """The approval the gate ``node`` asked for in the frame ``scope``, if it was reached."""
        return next((a for a in self.approvals if a.scope == scope and a.node == node), None)

    @property
    def finished(self) -> bool:
        return WorkflowStatus(self.status).finished

    @property
    def calls(self) -> tuple[CallTrace, ...]:
        return tuple(call for step in self.steps for call in step.calls)

    @property
    def trace_id(self) -> str | None:
        """The OpenTelemetry trace of the run (its first traced call's), when there is one."""
        return next((call.trace_id for call in self.calls if call.trace_id), None)

    @property
    def tokens(self) -> Tokens:
        return Tokens.added_up(call.tokens for call in self.calls)

    @property
    def cost_micro(self) -> int:
        return sum(call.cost_micro for call in self.calls)

    @property
    def cost_usd(self) -> float:
        return micro_to_usd(self.cost_micro)

    @property
    def latency_ms(self) -> float:
        """Time spent in model calls, all steps together."""
        return sum(step.latency_ms for step in self.steps)

    @property
    def retries(self) -> int:
        return sum(step.retries for step in self.steps)

    @property
    def fallbacks(self) -> int:
        return sum(len(step.agents) - 1 for step in self.steps)

    def duration_s(self, now: datetime | None = None) -> float:
        """Wall-clock time from submission to the end, or to ``now`` while it runs."""
        end = self.finished_at or now or utcnow()
        return (end - self.created_at).total_seconds()

    def cost_of(self, agent: str) -> int:
        """What ``agent``'s calls in this run cost, in micro-dollars, failed ones included."""
        return sum(call.cost_micro for call in self.calls if call.agent == agent)


def load_run_trace(database_url: str, run_id: str, *, include_io: bool = False) -> RunTrace:
    """Read run ``run_id`` and its trace. Raises ``RunNotFound`` if no such run is on record."""
    with session_scope(database_url) as session:
        workflow = session.execute(
            select(statements.workflows).where(statements.workflows.c.id == run_id)
        ).one_or_none()
        if workflow is None:
            raise RunNotFound(
                f"no workflow run with id {run_id!r} in this database; check the id (it is "
                "printed by `agentyard run` and is WorkflowRun.id), and that "
                "AGENTYARD_DATABASE_URL names the database the workers write to"
            )
        calls = _calls_by_step(session, run_id, include_io)
        tool_calls = tool_calls_by_step(session, run_id)
        step_rows = session.execute(
            select(statements.steps)
            .where(statements.steps.c.workflow_id == run_id)
            .order_by(statements.steps.c.position)
        ).all()
        node_rows = session.execute(
            select(statements.node_runs)
            .where(statements.node_runs.c.workflow_id == run_id)
            .order_by(statements.node_runs.c.started_at, statements.node_runs.c.scope)
        ).all()
        frame_rows = session.execute(
            select(*(statements.frames.c[name] for name in _FRAME_COLUMNS))
            .where(statements.frames.c.workflow_id == run_id)
            .order_by(statements.frames.c.index)
        ).all()
        approvals = tuple(
            ApprovalOutcome.from_row(row)
            for row in session.execute(
                select(ApprovalRow)
                .where(col(ApprovalRow.workflow_id) == run_id)
                .order_by(col(ApprovalRow.requested_at), col(ApprovalRow.scope))
            ).scalars()
        )
    steps = tuple(
        replace(
            _step(row, calls.get(row.id, []), tool_calls.get(row.id, ())),
            tool_approvals=tuple(a for a in approvals if a.source_id == row.id),
        )
        for row in step_rows
    )
    graph = None if workflow.graph is None else Graph.from_json(workflow.graph)
    if graph is not None:
        steps += _not_reached(graph, steps)
    return RunTrace(
        id=workflow.id,
        team=workflow.team,
        name=workflow.name,
        status=workflow.status,
        created_at=as_utc(workflow.created_at),
        finished_at=as_utc(workflow.finished_at),
        error=workflow.error,
        steps=steps,
        graph=graph,
        nodes=_nodes(graph, node_rows, frame_rows),
        approvals=approvals,
    )


_FRAME_COLUMNS = ("node_run_id", "index", "scope", "status", "error", "input")


def _nodes(
    graph: Graph | None, node_rows: Sequence[Any], frame_rows: Sequence[Any]
) -> tuple[NodeTrace, ...]:
    if graph is None or not node_rows:
        return ()
    frames: dict[str, list[Any]] = {}
    for row in frame_rows:
        frames.setdefault(row.node_run_id, []).append(row)
    traces = []
    for row in node_rows:
        node = graph.node(row.node)
        traces.append(
            NodeTrace(
                id=row.id,
                outcome=NodeOutcome.from_row(row),
                frames=tuple(
                    FrameTrace(
                        index=frame.index,
                        scope=frame.scope,
                        title=_frame_title(node, frame.index, frame.input),
                        status=frame.status,
                        error=frame.error,
                    )
                    for frame in frames.get(row.id, [])
                ),
            )
        )
    return tuple(traces)


def _frame_title(node: Node, index: int, given: str) -> str:
    if isinstance(node, LoopNode):
        return f"iteration {index}"
    if isinstance(node, FanOutNode):
        return f"branch {index + 1}: {label_of(given)}"
    if isinstance(node, ParallelNode):
        return f"branch {index + 1}: {node.branches[index][0].name}"
    if isinstance(node, RouteNode):
        return f"branch {node.branches[index][0]!r}"
    return f"frame {index}"


_CALL_COLUMNS = (
    "id",
    "step_id",
    "attempt",
    "agent_id",
    "model",
    "outcome",
    "error",
    "input_tokens",
    "output_tokens",
    "cache_creation_tokens",
    "cache_read_tokens",
    "cache_creation_1h_tokens",
    "cost_micro",
    "latency_ms",
    "wire_ms",
    "late",
    "started_at",
    "finished_at",
    "trace_id",
    "span_id",
)


def _calls_by_step(session: Session, run_id: str, include_io: bool) -> dict[str, list[Any]]:
    traces = statements.traces
    names = [*_CALL_COLUMNS, *(("prompt", "output") if include_io else ())]
    rows = session.execute(
        select(*(traces.c[name] for name in names))
        .where(traces.c.workflow_id == run_id)
        .order_by(traces.c.attempt, traces.c.started_at, traces.c.id)
    ).all()
    by_step: dict[str, list[Any]] = {}
    for row in rows:
        by_step.setdefault(row.step_id, []).append(row)
    return by_step


def _not_reached(graph: Graph, steps: tuple[StepTrace, ...]) -> tuple[StepTrace, ...]:
    """The top-level steps of the run's graph that no step was made for yet (steps are made when
    their node is ready): pending, after the steps made, each fed by the step before it."""
    made = {step.node: step for step in steps if step.scope == ""}
    position = max((step.position for step in steps), default=-1)
    previous: str | None = None
    added: list[StepTrace] = []
    for node in graph.nodes:
        if not isinstance(node, StepNode):
            previous = None
            continue
        step = made.get(node.name)
        if step is None:
            position += 1
            step = StepTrace(
                id=f"not-made:{node.name}",
                position=position,
                agent=node.agent,
                ran_by=None,
                status=StepStatus.PENDING.value,
                attempt=0,
                parent_step_id=previous,
                error=None,
                node=node.name,
            )
            added.append(step)
        previous = step.id
    return tuple(added)


def _step(row: Any, call_rows: list[Any], tool_calls: tuple[ToolCallResult, ...] = ()) -> StepTrace:
    links = [Link.FIRST][: len(call_rows)] + [
        Link.TURN
        if before.attempt == after.attempt or before.outcome == ToolApprovalNeeded.kind
        else Link.RETRY
        if before.agent_id == after.agent_id
        else Link.FALLBACK
        for before, after in pairwise(call_rows)
    ]
    return StepTrace(
        id=row.id,
        position=row.position,
        agent=row.agent_id,
        ran_by=row.ran_by,
        status=row.status,
        attempt=row.attempt,
        parent_step_id=row.parent_step_id,
        error=row.error,
        node=row.node,
        scope=row.scope,
        iteration=row.iteration,
        branch=row.branch,
        checks=tuple(CheckResult.from_json(c) for c in row.checks or ()),
        findings=tuple(Finding.from_json(f) for f in row.findings or ()),
        provenance=with_tools(
            tuple(Provenance.from_json(p) for p in row.provenance or ()), tool_calls
        ),
        tool_calls=tool_calls,
        calls=tuple(
            _call(call, link, row.agent_id) for call, link in zip(call_rows, links, strict=True)
        ),
    )


def _call(row: Any, link: Link, requested_agent: str) -> CallTrace:
    mapping = row._mapping
    return CallTrace(
        id=row.id,
        step_id=row.step_id,
        attempt=row.attempt,
        agent=row.agent_id,
        requested_agent=requested_agent,
        model=row.model,
        outcome=row.outcome,
        error=row.error,
        tokens=Tokens.of_row(row),
        cost_micro=row.cost_micro,
        latency_ms=float(row.latency_ms),
        started_at=as_utc(row.started_at),
        finished_at=as_utc(row.finished_at),
        link=link,
        trace_id=row.trace_id,
        span_id=row.span_id,
        io=CallIO(mapping["prompt"], mapping["output"]) if "prompt" in mapping else None,
        wire_ms=None if row.wire_ms is None else float(row.wire_ms),
        late=bool(row.late),
    )
