"""How a decision finds and keeps the states of its run.

The interpreter asks for what it needs, when it needs it: the steps of a few frames, one node
run, one frame. It never asks for every step of a run, so the work of one decision does not grow
with the run (a branch that finishes reads its frame and its node run, not its 999 siblings);
only a join reads every frame of its node run, once. States it is handed are the store's own: a
state asked for twice in a decision is the same object, and what the interpreter changes it says
with ``changed``. The coordinator's store (``orchestration/run_store.py``) reads in the
transaction that holds the run's lock and writes everything when the decision is made.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol, TypeAlias

from orchestration.workflow.state import ApprovalState, FrameState, NodeRunState, StepState
from storage.tool_ledger import AwaitingCall

State: TypeAlias = StepState | NodeRunState | FrameState | ApprovalState


class Store(Protocol):
    def steps_in(self, scopes: Sequence[str]) -> list[StepState]:
        """Every step made in the frames ``scopes``."""
        ...

    def node_runs_in(self, scopes: Sequence[str]) -> list[NodeRunState]:
        """Every node run made in the frames ``scopes``."""
        ...

    def node_run(self, scope: str, node: str) -> NodeRunState:
        """The run of ``node`` in the frame ``scope`` (``LookupError`` if there is none)."""
        ...

    def frame(self, scope: str) -> FrameState:
        """The frame named ``scope`` (``LookupError`` if there is none)."""
        ...

    def frame_at(self, node_run_id: str, index: int) -> FrameState | None:
        """Frame ``index`` of a node run, if it was made."""
        ...

    def frames_of(self, node_run_id: str) -> list[FrameState]:
        """Every frame of a node run, in index order."""
        ...

    def unsettled_steps(self) -> list[StepState]:
        """The steps that wait for a decision: a failed attempt, or a pending one."""
        ...

    def last_output(self) -> str | None:
        """The output of the step that was made last of those that succeeded."""
        ...

    def steps_done(self) -> int:
        """How many steps succeeded."""
        ...

    def facts(self) -> list[str]:
        """The ground truth the run was submitted with (``orc.submit(..., facts=[...])``)."""
        ...

    def approval(self, scope: str, node: str) -> ApprovalState | None:
        """The approval of ``node`` (a gate) in the frame ``scope``, if one was asked for."""
        ...

    def settleable_approvals(self, now: datetime) -> list[ApprovalState]:
        """The approvals a decision is to settle: decided by a person, the run not gone on from
        them yet; or still asked for past their due time (``now`` or before)."""
        ...

    def approvals_waiting(self) -> int:
        """How many of the run's approvals are asked for and not decided."""
        ...

    def tool_calls_awaiting_approval(self, step_id: str) -> list[AwaitingCall]:
        """The tool calls of step ``step_id`` that wait, on the tool ledger, for a person's
        approval before they run."""
        ...

    def next_position(self) -> int:
        """The position of the next step made (the order steps are made in, from 0)."""
        ...

    def add(self, state: State) -> None:
        """Keep a state made by this decision."""
        ...

    def changed(self, state: State) -> None:
        """Say that a state this store handed out was changed."""
        ...
