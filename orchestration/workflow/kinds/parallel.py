"""A parallel: fixed branches side by side, each given the node's input, joined once in branch
order (``branches.py`` does the rest)."""

from __future__ import annotations

from orchestration.workflow.graph import Node, ParallelNode
from orchestration.workflow.kinds import branches
from orchestration.workflow.kinds.base import Action, NodeContext
from orchestration.workflow.state import Failure, FrameState, Handoff


def sequence(node: ParallelNode, index: int) -> tuple[Node, ...]:
    return node.branches[index]


def start(ctx: NodeContext) -> list[Action]:
    node: ParallelNode = ctx.node
    given = Handoff(ctx.run.input_label, ctx.run.input, ctx.run.input_source)
    return branches.start(ctx, [given for _ in node.branches])


def frame_done(ctx: NodeContext, frame: FrameState) -> list[Action]:
    return branches.frame_done(ctx, frame)


def frame_failed(ctx: NodeContext, frame: FrameState, failure: Failure) -> list[Action]:
    return branches.frame_failed(ctx, frame, failure)
