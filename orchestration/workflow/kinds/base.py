"""What every kind of composite node has: the same small face, and the actions it answers with.

A kind (``loop``, ``fan_out``, ``parallel``, ``route``) is one module with four functions:

- ``sequence(node, index)``: the nodes frame ``index`` of its run runs, in order;
- ``start(ctx)``: its run was just made (``ctx.run``, with its input): what to do first;
- ``frame_done(ctx, frame)``: one of its frames finished, with ``frame.output``;
- ``frame_failed(ctx, frame, failure)``: one of its frames failed for good.

Each answers with actions: ``Begin`` a frame (its first node is entered with the frame's input),
``Finish`` with an output (the node is done; what follows it goes on), ``Fail`` (the node failed:
its own frame fails in turn), or ``CallJoin`` (a join agent is called with the branches' text; its
answer is the node's output). A kind keeps its progress in ``ctx.run.progress`` and never reads
a database: ``ctx`` hands it its frames. A user's function that raises, or answers with something
it should not, is a ``NodeError``, which fails the node with its message.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, TypeAlias

from orchestration.workflow.functions import FunctionRef
from orchestration.workflow.graph import Node
from orchestration.workflow.state import Failure, FrameState, Handoff, NodeRunState
from storage.errors import InvalidDefinition


class NodeError(Exception):
    """A node cannot go on: its message says why, naming the node, and what to do."""


@dataclass(frozen=True, slots=True)
class Begin:
    frame: FrameState


@dataclass(frozen=True, slots=True)
class Finish:
    output: str


@dataclass(frozen=True, slots=True)
class Fail:
    failure: Failure


@dataclass(frozen=True, slots=True)
class CallJoin:
    agent: str
    given: Handoff


Action: TypeAlias = Begin | Finish | Fail | CallJoin


class NodeContext(Protocol):
    """What a kind is handed about the node run it decides for."""

    @property
    def node(self) -> Any:
        """The node (a ``LoopNode`` for a loop, ...), as the run's graph has it."""
        ...

    @property
    def run(self) -> NodeRunState: ...

    @property
    def now(self) -> datetime: ...

    @property
    def remaining_micro(self) -> int | None:
        """What the workflow run's budget has left, its calls so far counted (None: no budget)."""
        ...

    def open(self, index: int, given: Handoff) -> FrameState:
        """Make frame ``index`` of this node run, waiting, with ``given`` as its input."""
        ...

    def frame(self, index: int) -> FrameState | None: ...

    def frames(self) -> list[FrameState]:
        """Every frame of this node run, in index order (read once, for a join)."""
        ...

    def worst_case_micro(self, frame: FrameState) -> int:
        """The most ``frame`` can cost, one pass through its nodes: what the run's budget must
        still hold for it to start."""
        ...

    def call(self, function: FunctionRef, role: str, *args: Any) -> Any:
        """The user's ``function`` called with ``args``; ``NodeError`` naming ``role`` (e.g.
        "until") if it cannot be found or raises."""
        ...

    def event(self, name: str, **fields: object) -> None:
        """A line for the log, written once the decision is made."""
        ...


class Kind(Protocol):
    def sequence(self, node: Any, index: int) -> tuple[Node, ...]: ...

    def start(self, ctx: NodeContext) -> list[Action]: ...

    def frame_done(self, ctx: NodeContext, frame: FrameState) -> list[Action]: ...

    def frame_failed(
        self, ctx: NodeContext, frame: FrameState, failure: Failure
    ) -> list[Action]: ...


def call_user_function(function: FunctionRef, role: str, node: str, *args: Any) -> Any:
    """``function(*args)``, for ``node``; whatever goes wrong is a ``NodeError`` saying what."""
    try:
        resolved: Callable[..., Any] = function.resolve()
    except InvalidDefinition as exc:
        raise NodeError(f"{node}: {exc}") from None
    try:
        return resolved(*args)
    except Exception as exc:
        raise NodeError(
            f"{node}: its {role} function {function.path} raised {type(exc).__name__}: {exc}"
        ) from None
