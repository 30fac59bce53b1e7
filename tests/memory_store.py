"""The interpreter's store over plain lists: the states of one run, in memory, for tests of the
workflow rules that need no database (``orchestration.workflow.store.Store``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from orchestration.workflow.state import (
    ApprovalState,
    FrameState,
    NodeRunState,
    StepState,
    is_summary,
)
from orchestration.workflow.store import State
from storage.tool_ledger import AwaitingCall


@dataclass
class MemoryStore:
    steps: list[StepState] = field(default_factory=list)
    node_runs: list[NodeRunState] = field(default_factory=list)
    frames: list[FrameState] = field(default_factory=list)
    approvals: list[ApprovalState] = field(default_factory=list)
    added: list[State] = field(default_factory=list)
    touched: list[State] = field(default_factory=list)
    given_facts: list[str] = field(default_factory=list)
    awaiting: dict[str, list[AwaitingCall]] = field(default_factory=dict)  # the tool ledger's

    def steps_in(self, scopes: Sequence[str]) -> list[StepState]:
        return [step for step in self.steps if step.scope in scopes]

    def node_runs_in(self, scopes: Sequence[str]) -> list[NodeRunState]:
        return [run for run in self.node_runs if run.scope in scopes]

    def node_run(self, scope: str, node: str) -> NodeRunState:
        for run in self.node_runs:
            if (run.scope, run.node) == (scope, node):
                return run
        raise LookupError((scope, node))

    def frame(self, scope: str) -> FrameState:
        for frame in self.frames:
            if frame.scope == scope:
                return frame
        raise LookupError(scope)

    def frame_at(self, node_run_id: str, index: int) -> FrameState | None:
        for frame in self.frames:
            if (frame.node_run_id, frame.index) == (node_run_id, index):
                return frame
        return None

    def frames_of(self, node_run_id: str) -> list[FrameState]:
        return sorted(
            (frame for frame in self.frames if frame.node_run_id == node_run_id),
            key=lambda frame: frame.index,
        )

    def unsettled_steps(self) -> list[StepState]:
        return [step for step in self.steps if step.status in ("attempt_failed", "pending")]

    def last_output(self) -> str | None:
        done = [s for s in self.steps if s.status == "succeeded" and not is_summary(s.node)]
        return max(done, key=lambda step: step.position).output if done else None

    def steps_done(self) -> int:
        return sum(s.status == "succeeded" and not is_summary(s.node) for s in self.steps)

    def facts(self) -> list[str]:
        return self.given_facts

    def approval(self, scope: str, node: str) -> ApprovalState | None:
        return next((a for a in self.approvals if (a.scope, a.node) == (scope, node)), None)

    def settleable_approvals(self, now: datetime) -> list[ApprovalState]:
        return [
            a
            for a in self.approvals
            if (a.waiting and a.due_at is not None and a.due_at <= now)
            or (a.status in ("approved", "rejected") and a.applied_at is None)
        ]

    def approvals_waiting(self) -> int:
        return sum(a.waiting for a in self.approvals)

    def tool_calls_awaiting_approval(self, step_id: str) -> list[AwaitingCall]:
        return list(self.awaiting.get(step_id, []))

    def next_position(self) -> int:
        return max((step.position for step in self.steps), default=-1) + 1

    def add(self, state: State) -> None:
        self.added.append(state)
        if isinstance(state, StepState):
            self.steps.append(state)
        elif isinstance(state, NodeRunState):
            self.node_runs.append(state)
        elif isinstance(state, ApprovalState):
            self.approvals.append(state)
        else:
            self.frames.append(state)

    def changed(self, state: State) -> None:
        self.touched.append(state)

    def step_of(self, node: str, scope: str = "") -> StepState:
        for step in self.steps:
            if (step.node, step.scope) == (node, scope):
                return step
        raise LookupError((node, scope))
