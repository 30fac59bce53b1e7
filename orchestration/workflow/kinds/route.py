"""A route: ``by(its input)`` names one of its branches, which runs, given the node's input; its
output is the node's. A label that is not one of the branches goes to ``default``; without one,
the node fails, naming the label and the ones it has."""

from __future__ import annotations

from orchestration.workflow.graph import Node, RouteNode
from orchestration.workflow.kinds.base import Action, Begin, Fail, Finish, NodeContext, NodeError
from orchestration.workflow.state import Failure, FrameState, Handoff


def sequence(node: RouteNode, index: int) -> tuple[Node, ...]:
    return node.branches[index][1]


def start(ctx: NodeContext) -> list[Action]:
    node: RouteNode = ctx.node
    asked = ctx.call(node.by, "by", ctx.run.input)
    labels = [label for label, _ in node.branches]
    if not isinstance(asked, str):
        raise NodeError(
            f"{node.name}: its by function {node.by.path} must return a label (text), it "
            f"returned {type(asked).__name__} {asked!r:.60}"
        )
    label = asked
    if label not in labels:
        if node.default is None:
            raise NodeError(
                f"{node.name}: its by function {node.by.path} returned {asked!r}, which is not "
                f"one of its branches {labels}, and the route has no default; return one of "
                "them, or give route(...) a default"
            )
        label = node.default
    ctx.run.progress.update({"label": label, "asked": asked})
    ctx.event("route.chosen", node=node.name, label=label, asked=asked)
    given = Handoff(ctx.run.input_label, ctx.run.input, ctx.run.input_source)
    return [Begin(ctx.open(labels.index(label), given))]


def frame_done(ctx: NodeContext, frame: FrameState) -> list[Action]:
    return [Finish(frame.output or "")]


def frame_failed(ctx: NodeContext, frame: FrameState, failure: Failure) -> list[Action]:
    label = ctx.run.progress.get("label")
    return [Fail(Failure(failure.kind, f"{ctx.node.name}, branch {label!r}: {failure.message}"))]
