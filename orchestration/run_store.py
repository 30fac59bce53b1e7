"""The coordinator's store: the states of one run, read in the transaction that holds its lock,
and written back, all at once, when the decision is made (``orchestration.workflow.store``).

Reads go to the database the first time a state is asked for and are kept for the rest of the
decision, so a state asked for twice is one object, and what the interpreter changed on it is
what is written. Every statement is a prebuilt one (``storage.statements``): this is the path of
every step of every run.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from orchestration.workflow.graph import Graph
from orchestration.workflow.state import TOP, ApprovalState, FrameState, NodeRunState, StepState
from orchestration.workflow.store import State
from storage import approvals, statements
from storage.executor import Tx
from storage.tool_ledger import AwaitingCall, calls_awaiting_approval


class RunStore:
    def __init__(
        self,
        tx: Tx,
        workflow_id: str,
        graph: Graph,
        *,
        new: bool = False,
        facts: list[str] | None = None,
    ) -> None:
        """``new``: the run is being made in this transaction; it has nothing to read yet, and
        ``facts`` are the ones it is made with."""
        self._tx = tx
        self._id = workflow_id
        self._graph = graph
        self._steps: dict[str, StepState] = {}
        self._scopes: dict[str, list[StepState]] = {}  # the steps of the frames read so far
        self._node_runs: dict[str, NodeRunState] = {}
        self._node_run_at: dict[tuple[str, str], NodeRunState] = {}
        self._run_scopes: set[str] = set()  # the frames whose node runs were read
        self._frames: dict[str, FrameState] = {}
        self._frame_at: dict[str, FrameState] = {}  # by scope
        self._approvals: dict[str, ApprovalState] = {}
        self._approval_at: dict[tuple[str, str], ApprovalState | None] = {}
        self._new: dict[str, State] = {}
        self._changed: dict[str, State] = {}
        self._position: int | None = 0 if new else None
        self._facts: list[str] | None = (facts or []) if new else None
        if new:
            self._scopes[TOP] = []

    # -- reads -----------------------------------------------------------------------------------

    def known(self, step: StepState) -> StepState:
        """Keep ``step`` (read by the caller, e.g. returned by the statement that recorded it)
        as this store's own."""
        return self._step(self._named(step))

    def steps_in(self, scopes: Sequence[str]) -> list[StepState]:
        missing = [scope for scope in dict.fromkeys(scopes) if scope not in self._scopes]
        for at in range(0, len(missing), statements.SCOPES_AT_ONCE):
            batch = missing[at : at + statements.SCOPES_AT_ONCE]
            for scope in batch:
                self._scopes[scope] = []
            params = {"w_id": self._id, **statements.scopes_params(batch)}
            for row in self._tx.run(statements.STEPS_IN_SCOPES, params):
                step = self._step(self._step_of(row))
                if step not in self._scopes[step.scope]:
                    self._scopes[step.scope].append(step)
        return [step for scope in dict.fromkeys(scopes) for step in self._scopes[scope]]

    def node_runs_in(self, scopes: Sequence[str]) -> list[NodeRunState]:
        missing = [scope for scope in dict.fromkeys(scopes) if scope not in self._run_scopes]
        for at in range(0, len(missing), statements.SCOPES_AT_ONCE):
            batch = missing[at : at + statements.SCOPES_AT_ONCE]
            self._run_scopes.update(batch)
            params = {"w_id": self._id, **statements.scopes_params(batch)}
            for row in self._tx.run(statements.NODE_RUNS_IN_SCOPES, params):
                self._node_run(NodeRunState(**row._asdict()))
        wanted = set(scopes)
        return [run for run in self._node_runs.values() if run.scope in wanted]

    def node_run(self, scope: str, node: str) -> NodeRunState:
        found = self._node_run_at.get((scope, node))
        if found is not None:
            return found
        row = self._tx.run(
            statements.NODE_RUN_AT, {"w_id": self._id, "w_scope": scope, "w_node": node}
        ).one_or_none()
        if row is None:
            raise LookupError(f"run {self._id} has no run of node {node!r} in frame {scope!r}")
        return self._node_run(NodeRunState(**row._asdict()))

    def frame(self, scope: str) -> FrameState:
        found = self._frame_at.get(scope)
        if found is not None:
            return found
        row = self._tx.run(
            statements.FRAME_AND_OWNER_AT, {"w_id": self._id, "w_scope": scope}
        ).one_or_none()
        if row is None:
            raise LookupError(f"run {self._id} has no frame {scope!r}")
        values = row._asdict()
        owner = {name: values.pop(f"owner_{name}") for name in statements.NODE_RUN_STATE_COLUMNS}
        self._node_run(NodeRunState(**owner))  # its owner, asked for next
        return self._frame(FrameState(**values))

    def frame_at(self, node_run_id: str, index: int) -> FrameState | None:
        for frame in self._frames.values():
            if frame.node_run_id == node_run_id and frame.index == index:
                return frame
        row = self._tx.run(
            statements.FRAME_OF_INDEX, {"w_node_run": node_run_id, "w_index": index}
        ).one_or_none()
        return None if row is None else self._frame(FrameState(**row._asdict()))

    def frames_of(self, node_run_id: str) -> list[FrameState]:
        rows = self._tx.run(statements.FRAMES_OF_NODE_RUN, {"w_node_run": node_run_id})
        found = {
            frame.id: frame for frame in (self._frame(FrameState(**r._asdict())) for r in rows)
        }
        for frame in self._frames.values():  # made in this decision, not written yet
            if frame.node_run_id == node_run_id:
                found[frame.id] = frame
        return sorted(found.values(), key=lambda frame: frame.index)

    def unsettled_steps(self) -> list[StepState]:
        rows = self._tx.run(statements.UNSETTLED_STEPS, {"w_id": self._id})
        return [self._step(self._step_of(row)) for row in rows]

    def last_output(self) -> str | None:
        output = self._tx.run(statements.LAST_OUTPUT, {"w_id": self._id}).scalar()
        return None if output is None else str(output)

    def steps_done(self) -> int:
        return int(self._tx.run(statements.STEPS_DONE, {"w_id": self._id}).scalar() or 0)

    def facts(self) -> list[str]:
        if self._facts is None:
            found = self._tx.run(statements.WORKFLOW_FACTS, {"w_id": self._id}).scalar()
            self._facts = [str(fact) for fact in found or []]
        return self._facts

    def approval(self, scope: str, node: str) -> ApprovalState | None:
        if (scope, node) not in self._approval_at:
            row = self._tx.run(
                approvals.APPROVAL_AT, {"w_id": self._id, "w_scope": scope, "w_node": node}
            ).one_or_none()
            self._approval_at[(scope, node)] = None
            if row is not None:
                self._approval(ApprovalState(**row._asdict()))
        return self._approval_at[(scope, node)]

    def settleable_approvals(self, now: datetime) -> list[ApprovalState]:
        rows = self._tx.run(approvals.SETTLEABLE_APPROVALS, {"w_id": self._id, "w_now": now})
        return [self._approval(ApprovalState(**row._asdict())) for row in rows]

    def approvals_waiting(self) -> int:
        on_record = {
            row.id for row in self._tx.run(approvals.WAITING_APPROVALS, {"w_id": self._id})
        }
        # what this decision asked for or decided, not written yet, counts as it is now
        known = {approval.id: approval.waiting for approval in self._approvals.values()}
        return len(on_record - set(known)) + sum(known.values())

    def tool_calls_awaiting_approval(self, step_id: str) -> list[AwaitingCall]:
        return calls_awaiting_approval(self._tx, step_id)

    def next_position(self) -> int:
        if self._position is None and self._graph.is_sequence and TOP in self._scopes:
            # every step of a sequence is at the top level, and those were read already
            self._position = max((step.position for step in self._scopes[TOP]), default=-1) + 1
        if self._position is None:
            self._position = int(
                self._tx.run(statements.NEXT_POSITION, {"w_id": self._id}).scalar() or 0
            )
        position = self._position
        self._position += 1
        return position

    # -- writes ----------------------------------------------------------------------------------

    def add(self, state: State) -> None:
        self._new[state.id] = state
        if isinstance(state, StepState):
            self._step(state)
            self._scopes.setdefault(state.scope, []).append(state)
        elif isinstance(state, NodeRunState):
            self._node_run(state)
        elif isinstance(state, ApprovalState):
            self._approval(state)
        else:
            self._frame(state)

    def changed(self, state: State) -> None:
        if state.id not in self._new:
            self._changed[state.id] = state

    def flush(self) -> None:
        """Write what the decision made and changed: new node runs, frames, steps and approvals
        first (in that order: each refers to the one before), then the changes."""
        inserts: tuple[tuple[Any, type, tuple[str, ...]], ...] = (
            (statements.INSERT_NODE_RUN, NodeRunState, statements.NODE_RUN_STATE_COLUMNS),
            (statements.INSERT_FRAME, FrameState, statements.FRAME_STATE_COLUMNS),
            (statements.INSERT_STEP, StepState, statements.STEP_STATE_COLUMNS),
            (approvals.INSERT_APPROVAL, ApprovalState, approvals.APPROVAL_STATE_COLUMNS),
        )
        for statement, kind, columns in inserts:
            self._write(
                statement,
                [
                    {"workflow_id": self._id, **_values(state, columns)}
                    for state in self._new.values()
                    if isinstance(state, kind)
                ],
            )
        updates: tuple[tuple[Any, type, tuple[str, ...]], ...] = (
            (statements.SAVE_NODE_RUN, NodeRunState, statements.SAVED_NODE_RUN_COLUMNS),
            (statements.SAVE_FRAME, FrameState, statements.SAVED_FRAME_COLUMNS),
            (statements.SAVE_STEP, StepState, statements.PLANNED_STEP_COLUMNS),
            (approvals.SAVE_APPROVAL, ApprovalState, approvals.SAVED_APPROVAL_COLUMNS),
        )
        for statement, kind, columns in updates:
            self._write(
                statement,
                [
                    {"w_id": state.id, **_values(state, columns)}
                    for state in self._changed.values()
                    if isinstance(state, kind)
                ],
            )
        self._new.clear()
        self._changed.clear()

    def _write(self, statement: Any, rows: list[dict[str, Any]]) -> None:
        if len(rows) > 3:
            self._tx.run(statement, rows)
            return
        for row in rows:  # a few, one by one: cheaper than psycopg's pipelined batch
            self._tx.run(statement, row)

    # -- identity ----------------------------------------------------------------------------------

    def _step(self, step: StepState) -> StepState:
        return self._steps.setdefault(step.id, step)

    def _node_run(self, run: NodeRunState) -> NodeRunState:
        kept = self._node_runs.setdefault(run.id, run)
        self._node_run_at[(kept.scope, kept.node)] = kept
        return kept

    def _frame(self, frame: FrameState) -> FrameState:
        kept = self._frames.setdefault(frame.id, frame)
        self._frame_at[kept.scope] = kept
        return kept

    def _approval(self, approval: ApprovalState) -> ApprovalState:
        kept = self._approvals.setdefault(approval.id, approval)
        self._approval_at[(kept.scope, kept.node)] = kept
        return kept

    def _step_of(self, row: Any) -> StepState:
        return self._named(StepState(**row._asdict()))

    def _named(self, step: StepState) -> StepState:
        if step.node is None:  # a run from before graphs: its steps are its sequence's nodes
            nodes = self._graph.nodes
            if step.position < len(nodes):
                step.node = nodes[step.position].name
        return step


def _values(state: State, columns: tuple[str, ...]) -> dict[str, Any]:
    return {name: getattr(state, name) for name in columns}
