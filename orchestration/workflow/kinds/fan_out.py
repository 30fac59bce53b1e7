"""A fan-out: its body runs once per item of ``over(its input)``, in branches joined once.

``over`` is called once, when the node starts; its items become the branches' frames (each
frame keeps its item), so nothing calls it again and a run in flight never sees a changed list.
An empty list is a clear outcome: the node is done at once, with an empty output. The rest
(``max_parallel``, the budget, the join) is ``branches.py``.
"""

from __future__ import annotations

from orchestration.workflow.graph import FanOutNode, Node
from orchestration.workflow.kinds import branches
from orchestration.workflow.kinds.base import Action, NodeContext, NodeError
from orchestration.workflow.state import Failure, FrameState, Handoff

MAX_ITEMS = 10_000


def sequence(node: FanOutNode, index: int) -> tuple[Node, ...]:
    return node.body


def start(ctx: NodeContext) -> list[Action]:
    node: FanOutNode = ctx.node
    items = ctx.call(node.over, "over", ctx.run.input)
    if not isinstance(items, list | tuple) or not all(isinstance(i, str) for i in items):
        raise NodeError(
            f"{node.name}: its over function {node.over.path} must return a list of texts, it "
            f"returned {_described(items)}"
        )
    if len(items) > MAX_ITEMS:
        raise NodeError(
            f"{node.name}: its over function {node.over.path} returned {len(items)} items, over "
            f"the {MAX_ITEMS} a fan-out takes; split the work into several runs"
        )
    ctx.event("fan_out.items", node=node.name, items=len(items))
    total = len(items)
    return branches.start(
        ctx,
        [
            Handoff(f"Item {index + 1} of {total} ({node.name})", item)
            for index, item in enumerate(items)
        ],
    )


def frame_done(ctx: NodeContext, frame: FrameState) -> list[Action]:
    return branches.frame_done(ctx, frame)


def frame_failed(ctx: NodeContext, frame: FrameState, failure: Failure) -> list[Action]:
    return branches.frame_failed(ctx, frame, failure)


def _described(value: object) -> str:
    if isinstance(value, list | tuple):
        odd = next(item for item in value if not isinstance(item, str))
        return f"a list holding {type(odd).__name__} {odd!r:.60}"
    return f"{type(value).__name__} {value!r:.60}"
