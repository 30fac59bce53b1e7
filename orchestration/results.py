"""What a user gets back: a handle on a run, and the result of a finished one."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, fields
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlmodel import Session, col, select

from orchestration.guards.detect import Finding
from orchestration.guards.provenance import Provenance, Trust, derived, tool_source
from orchestration.pricing import micro_to_usd
from orchestration.workflow.checks import CheckResult
from orchestration.workflow.gates import described
from storage.db import session_scope
from storage.errors import RunNotFound, WaitTimeout
from storage.models import (
    ApprovalRow,
    NodeRunRow,
    StepRow,
    ToolCallRow,
    WorkflowRow,
    WorkflowStatus,
    as_utc,
)

if TYPE_CHECKING:
    from collections.abc import Callable


@dataclass(frozen=True, slots=True)
class Tokens:
    input: int = 0
    output: int = 0
    cache_creation: int = 0  # every cache write, of either TTL
    cache_read: int = 0
    cache_creation_1h: int = 0  # the part of cache_creation written with the 1-hour TTL

    @property
    def total(self) -> int:
        return self.input + self.output + self.cache_creation + self.cache_read

    @classmethod
    def of_row(cls, row: Any) -> Tokens:
        """The token columns of a step or trace row (``input_tokens``, ``output_tokens``...)."""
        return cls(
            row.input_tokens,
            row.output_tokens,
            row.cache_creation_tokens,
            row.cache_read_tokens,
            row.cache_creation_1h_tokens,
        )

    @classmethod
    def added_up(cls, many: Iterable[Tokens]) -> Tokens:
        """Every kind summed over ``many``."""
        every = list(many)
        return cls(*(sum(getattr(t, f.name) for t in every) for f in fields(cls)))


@dataclass(frozen=True, slots=True)
class StepResult:
    id: str
    position: int
    agent: str  # the agent that ran the latest attempt (a fallback, when one took over)
    requested_agent: str
    status: str
    output: str | None
    error: str | None
    attempt: int
    tokens: Tokens
    cost_usd: float
    started_at: datetime | None
    finished_at: datetime | None
    node: str | None = None  # its node in the run's graph, e.g. "writer" or "loop1/editor"
    iteration: int | None = None  # 1-based, in a loop; else None
    branch: int | None = None  # 0-based, in a fan-out or a parallel; else None
    scope: str = ""  # the frame it ran in: "" at the top, else e.g. "fan_out1#4;fan_out1/loop1#2"
    checks: tuple[CheckResult, ...] = ()  # every verdict on its answers, in order
    data: Any = None  # its output parsed as its agent's output_schema (JSON data)
    findings: tuple[Finding, ...] = ()  # injection attempts suspected in what it was given
    provenance: tuple[Provenance, ...] = ()  # where each piece of its prompt came from
    tool_calls: tuple[ToolCallResult, ...] = ()  # each tool call its agent made, in order

    @property
    def trust(self) -> Trust:
        """How far its output is trusted: as far as the least trusted piece it was made from."""
        return derived(self.provenance)

    @classmethod
    def from_row(cls, row: StepRow, tool_calls: tuple[ToolCallResult, ...] = ()) -> StepResult:
        return cls(
            id=row.id,
            position=row.position,
            agent=row.ran_by or row.agent_id,
            requested_agent=row.agent_id,
            status=row.status,
            output=row.output,
            error=row.error,
            attempt=row.attempt,
            tokens=Tokens.of_row(row),
            cost_usd=micro_to_usd(row.cost_micro),
            started_at=as_utc(row.started_at),
            finished_at=as_utc(row.finished_at),
            node=row.node,
            iteration=row.iteration,
            branch=row.branch,
            scope=row.scope,
            checks=tuple(CheckResult.from_json(c) for c in row.checks or ()),
            data=row.data,
            findings=tuple(Finding.from_json(f) for f in row.findings or ()),
            provenance=with_tools(
                tuple(Provenance.from_json(p) for p in row.provenance or ()), tool_calls
            ),
            tool_calls=tool_calls,
        )


def with_tools(
    provenance: tuple[Provenance, ...], tool_calls: tuple[ToolCallResult, ...]
) -> tuple[Provenance, ...]:
    """A step's provenance, and the tools whose results its agent read (untrusted, whatever the
    tool: ``tool <name>``)."""
    tools = [Provenance(tool_source(call.tool)) for call in tool_calls]
    return tuple(dict.fromkeys([*provenance, *tools]))


def tool_calls_by_step(session: Session, run_id: str) -> dict[str, tuple[ToolCallResult, ...]]:
    """Every tool call of run ``run_id``, by step, in the order the model asked for them."""
    found = session.execute(
        select(ToolCallRow)
        .where(col(ToolCallRow.workflow_id) == run_id)
        .order_by(col(ToolCallRow.turn), col(ToolCallRow.index))
    )
    by_step: dict[str, list[ToolCallResult]] = {}
    for row in found.scalars():
        by_step.setdefault(row.step_id, []).append(ToolCallResult.from_row(row))
    return {step_id: tuple(calls) for step_id, calls in by_step.items()}


@dataclass(frozen=True, slots=True)
class ToolCallResult:
    """One tool call of a step, from the tool ledger: what the model asked for and what it got
    (``result`` as the tool gave it, before it was marked as data for the model)."""

    tool: str
    arguments: dict[str, Any]
    result: str | None
    is_error: bool
    status: str  # succeeded, failed (an is_error result), or started (its outcome unknown)
    runs: int  # how many times it was started: 1, or more for one run again safely
    duration_ms: float | None
    turn: int  # the model's answer that asked for it
    index: int  # its place among that answer's calls

    @classmethod
    def from_row(cls, row: ToolCallRow) -> ToolCallResult:
        return cls(
            tool=row.tool,
            arguments=dict(row.arguments),
            result=row.result,
            is_error=row.is_error,
            status=row.status,
            runs=row.runs,
            duration_ms=row.duration_ms,
            turn=row.turn,
            index=row.index,
        )


@dataclass(frozen=True, slots=True)
class LoopOutcome:
    """How one run of a loop went: its iterations, and why it stopped (``until``,
    ``converged``, ``oscillating``, ``max_iterations``, ``budget``; None while it runs or if a
    failure ended it), with the similarity of the drafts that decided it, if one did."""

    node: str  # e.g. "loop1", or "fan_out1/loop1" inside a fan-out
    iterations: int
    stopped_by: str | None
    similarity: float | None
    scope: str = ""  # the frame it ran in: "" at the top, "fan_out1#3" in a fan-out's 4th branch
    status: str = "running"  # running, succeeded or failed

    @classmethod
    def from_row(cls, row: NodeRunRow) -> LoopOutcome:
        progress = row.progress or {}
        return cls(
            node=row.node,
            iterations=int(progress.get("iteration", 0)),
            stopped_by=progress.get("stopped_by"),
            similarity=progress.get("similarity"),
            scope=row.scope,
            status=row.status,
        )


@dataclass(frozen=True, slots=True)
class NodeOutcome:
    """One run of a composite node (a loop, a fan-out, a parallel, a route) and what it came to;
    ``summary`` says it in words."""

    node: str
    kind: str
    scope: str  # the frame it ran in: "" at the top
    status: str  # running, succeeded or failed
    progress: dict[str, Any]
    error: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None

    @classmethod
    def from_row(cls, row: Any) -> NodeOutcome:
        return cls(
            node=row.node,
            kind=row.kind,
            scope=row.scope,
            status=row.status,
            progress=dict(row.progress or {}),
            error=row.error,
            started_at=as_utc(row.started_at),
            finished_at=as_utc(row.finished_at),
        )

    @property
    def summary(self) -> str:
        """What it came to: "2 iteration(s), stopped by converged (similarity 0.93)",
        "7 branch(es): 6 succeeded, 1 failed", "branch 'long'"."""
        p = self.progress
        if self.kind == "loop":
            iterations = int(p.get("iteration", 0))
            stopped = p.get("stopped_by")
            if stopped is None:
                return f"{iterations} iteration(s)" + (
                    ", under way" if self.status == "running" else ""
                )
            similarity = p.get("similarity")
            measured = "" if similarity is None else f" (similarity {similarity:.2f})"
            return f"{iterations} iteration(s), stopped by {stopped}{measured}"
        if self.kind in ("fan_out", "parallel"):
            total = int(p.get("total", 0))
            parts = [f"{int(p.get('succeeded', 0))} succeeded"]
            if p.get("failed"):
                parts.append(f"{int(p['failed'])} failed")
            if p.get("running"):
                parts.append(f"{int(p['running'])} running")
            waiting = total - int(p.get("started", 0))
            if waiting:
                parts.append(f"{waiting} not started")
            stopped = {"budget": ", stopped by the budget", "failed": ", stopped at a failure"}
            return f"{total} branch(es): {', '.join(parts)}{stopped.get(p.get('stopped'), '')}"
        if self.kind == "route":
            label, asked = p.get("label"), p.get("asked")
            if label is None:
                return "no branch chosen"
            return f"branch {label!r}" + ("" if asked == label else f" (asked {asked!r})")
        return ""


@dataclass(frozen=True, slots=True)
class ApprovalOutcome:
    """A person's approval as its row keeps it: asked for (``requests`` times: again when what
    it follows changed), bound to ``subject_hash``, and decided (who, when, their note; a
    timeout's note says what it applied), and when the run went on from it."""

    gate: str
    node: str
    scope: str
    kind: str  # gate, or tool
    status: str  # requested, approved, rejected or timed_out
    subject_hash: str
    requests: int
    requested_at: datetime
    due_at: datetime | None
    on_timeout: str
    decided_at: datetime | None = None
    decided_by: str | None = None
    note: str | None = None
    applied_at: datetime | None = None
    source_id: str | None = None  # a gate's: what it followed; a tool call's: its step

    @classmethod
    def from_row(cls, row: ApprovalRow) -> ApprovalOutcome:
        return cls(
            gate=row.gate,
            node=row.node,
            scope=row.scope,
            kind=row.kind,
            status=row.status,
            subject_hash=row.subject_hash,
            requests=row.requests,
            requested_at=as_utc(row.requested_at),
            due_at=as_utc(row.due_at),
            on_timeout=row.on_timeout,
            decided_at=as_utc(row.decided_at),
            decided_by=row.decided_by,
            note=row.note,
            applied_at=as_utc(row.applied_at),
            source_id=row.source_id,
        )


@dataclass(frozen=True, slots=True)
class WorkflowResult:
    id: str
    workflow: str
    status: WorkflowStatus
    input: str
    output: str | None
    error: str | None
    cost_usd: float
    steps: tuple[StepResult, ...]
    created_at: datetime
    finished_at: datetime | None
    loops: tuple[LoopOutcome, ...] = ()  # one per loop that ran, in the order they started
    nodes: tuple[NodeOutcome, ...] = ()  # every loop, fan-out, parallel and route that ran
    approvals: tuple[ApprovalOutcome, ...] = ()  # every gate reached: asked for, decided

    @property
    def waiting_for(self) -> tuple[ApprovalOutcome, ...]:
        """The approvals the run waits for now."""
        return tuple(a for a in self.approvals if a.status == "requested")

    @property
    def tokens(self) -> Tokens:
        return Tokens.added_up(s.tokens for s in self.steps)

    @property
    def finished(self) -> bool:
        return self.status.finished


def load_result(database_url: str, run_id: str) -> WorkflowResult:
    """The current state of a run (finished or not) from the database."""
    with session_scope(database_url) as session:
        workflow = session.get(WorkflowRow, run_id)
        if workflow is None:
            raise RunNotFound(f"no workflow run with id {run_id!r} in this database")
        steps = session.exec(
            select(StepRow).where(StepRow.workflow_id == run_id).order_by(col(StepRow.position))
        ).all()
        node_runs = session.exec(
            select(NodeRunRow)
            .where(NodeRunRow.workflow_id == run_id)
            .order_by(col(NodeRunRow.started_at), col(NodeRunRow.scope), col(NodeRunRow.node))
        ).all()
        calls = tool_calls_by_step(session, run_id)
        approvals = session.exec(
            select(ApprovalRow)
            .where(ApprovalRow.workflow_id == run_id)
            .order_by(col(ApprovalRow.requested_at), col(ApprovalRow.scope))
        ).all()
    step_results = tuple(StepResult.from_row(s, calls.get(s.id, ())) for s in steps)
    return WorkflowResult(
        id=workflow.id,
        workflow=workflow.name,
        status=WorkflowStatus(workflow.status),
        input=workflow.input,
        output=workflow.output,
        error=workflow.error,
        # While a run is under way, its cost so far is the sum of its steps.
        cost_usd=micro_to_usd(workflow.cost_micro or sum(s.cost_micro for s in steps)),
        steps=step_results,
        created_at=as_utc(workflow.created_at) or workflow.created_at,
        finished_at=as_utc(workflow.finished_at),
        loops=tuple(LoopOutcome.from_row(row) for row in node_runs if row.kind == "loop"),
        nodes=tuple(NodeOutcome.from_row(row) for row in node_runs),
        approvals=tuple(ApprovalOutcome.from_row(row) for row in approvals),
    )


class WorkflowRun:
    """A handle on one submitted run; ``Orchestrator.run(id)`` rebuilds it in any process."""

    def __init__(self, run_id: str, database_url: str) -> None:
        self.id = run_id
        self._database_url = database_url

    def __repr__(self) -> str:
        return f"WorkflowRun(id={self.id!r})"

    def result(self) -> WorkflowResult:
        return load_result(self._database_url, self.id)

    def wait(
        self,
        timeout: float | None = None,
        poll_s: float = 0.05,
        on_progress: Callable[[WorkflowResult], None] | None = None,
    ) -> WorkflowResult:
        """Block until the run finishes; ``WaitTimeout`` after ``timeout`` seconds (it goes on)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = poll_s
        while True:
            result = self.result()
            if on_progress is not None:
                on_progress(result)
            if result.finished:
                return result
            if deadline is not None and time.monotonic() >= deadline:
                what = sorted({described(a.kind, a.gate) for a in result.waiting_for})
                waits = f" (for a person's approval of {', '.join(what)})" if what else ""
                raise WaitTimeout(
                    f"workflow run {self.id} is still {result.status.value}{waits} after "
                    f"{timeout}s; it goes on: call orc.run({self.id!r}).wait() again to keep "
                    "waiting"
                )
            time.sleep(
                delay if deadline is None else max(0.0, min(delay, deadline - time.monotonic()))
            )
            delay = min(delay * 1.5, 0.5)
