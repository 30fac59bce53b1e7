"""Branches side by side, joined once: what a fan-out and a parallel share.

Every branch's frame is made when the node starts (a fan-out's item is its frame's input), and
started while fewer than ``max_parallel`` run and the run's budget can hold one more: the worst
case of every branch under way, this node's, is counted against what the budget has left. A
branch that cannot be afforded waits for one under way to finish (it usually costs less than its
worst case); with none under way, the node stops there, keeping what finished, and the run ends
``budget_exceeded``. Counting happens on the node run's progress, under the workflow's lock, so
``max_parallel`` holds across every worker, and a branch that finishes costs one frame and one
node run to read, whatever the number of branches.

Fan-in happens when every branch has finished: the frames are read once, and joined in branch
order (never in the order they finished), by ``joins.joined_text``, the user's ``merge``, or a
join agent given the joined text. ``on_failure="fail_fast"`` fails the node at the first branch
that fails for good, and starts no more; ``"collect"`` joins what succeeded and lists what failed
(a node all of whose branches failed fails).
"""

from __future__ import annotations

from collections.abc import Callable

from orchestration.workflow.graph import FanOutNode, ParallelNode
from orchestration.workflow.joins import BranchOutcome, joined_text, label_of
from orchestration.workflow.kinds.base import (
    Action,
    Begin,
    CallJoin,
    Fail,
    Finish,
    NodeContext,
    NodeError,
)
from orchestration.workflow.state import Failure, FrameState, Handoff
from storage.models import FrameStatus

Labeller = Callable[[FrameState], str]


def start(ctx: NodeContext, inputs: list[Handoff]) -> list[Action]:
    """Make a waiting frame per input, then start as many as may run."""
    ctx.run.progress.update(
        {"total": len(inputs), "started": 0, "running": 0, "succeeded": 0, "failed": 0}
    )
    ctx.run.progress.update({"held_micro": 0, "stopped": None})
    for index, given in enumerate(inputs):
        ctx.open(index, given)
    return _go_on(ctx)


def frame_done(ctx: NodeContext, frame: FrameState) -> list[Action]:
    progress = ctx.run.progress
    progress["succeeded"] += 1
    _release(ctx, frame)
    return _go_on(ctx)


def frame_failed(ctx: NodeContext, frame: FrameState, failure: Failure) -> list[Action]:
    node: FanOutNode | ParallelNode = ctx.node
    progress = ctx.run.progress
    progress["failed"] += 1
    _release(ctx, frame)
    if node.on_failure == "fail_fast":
        progress["stopped"] = "failed"
        return [
            Fail(
                Failure(
                    failure.kind,
                    f"{node.name}, branch {frame.index + 1} of {progress['total']}: "
                    f"{failure.message}",
                )
            )
        ]
    return _go_on(ctx)


def _release(ctx: NodeContext, frame: FrameState) -> None:
    progress = ctx.run.progress
    progress["running"] -= 1
    progress["held_micro"] -= frame.held_micro


def _go_on(ctx: NodeContext) -> list[Action]:
    """Start what may start; join once nothing runs and nothing more will start."""
    node: FanOutNode | ParallelNode = ctx.node
    progress = ctx.run.progress
    actions: list[Action] = []
    limit = node.max_parallel if isinstance(node, FanOutNode) else None
    while progress["stopped"] is None and progress["started"] < progress["total"]:
        if limit is not None and progress["running"] >= limit:
            break
        frame = ctx.frame(progress["started"])
        if frame is None:
            raise NodeError(f"{node.name}: branch {progress['started'] + 1} has no frame")
        remaining = ctx.remaining_micro  # None: the run has no budget, nothing to hold
        worst = 0 if remaining is None else ctx.worst_case_micro(frame)
        if remaining is not None and progress["held_micro"] + worst > remaining:
            if progress["running"] == 0:
                progress["stopped"] = "budget"
                ctx.event(
                    "branches.unaffordable",
                    node=node.name,
                    branch=frame.index,
                    worst_case_micro=worst,
                    remaining_micro=remaining,
                )
            break  # what runs may leave room: it seldom costs its worst case
        frame.held_micro = worst
        progress["held_micro"] += worst
        progress["started"] += 1
        progress["running"] += 1
        actions.append(Begin(frame))
    if progress["running"] == 0 and (
        progress["stopped"] == "budget" or progress["started"] == progress["total"]
    ):
        actions.extend(_join(ctx))
    return actions


def _join(ctx: NodeContext) -> list[Action]:
    node: FanOutNode | ParallelNode = ctx.node
    progress = ctx.run.progress
    total = progress["total"]
    if total == 0:
        ctx.event("branches.none", node=node.name)
        return [Finish("")]
    finished = [
        frame
        for frame in ctx.frames()
        if frame.status in (FrameStatus.SUCCEEDED.value, FrameStatus.FAILED.value)
    ]
    outcomes = [
        BranchOutcome(
            branch=frame.index,
            label=frame_label(node, frame),
            output=frame.output if frame.status == FrameStatus.SUCCEEDED.value else None,
            error=None if frame.status == FrameStatus.SUCCEEDED.value else frame.error or "failed",
        )
        for frame in finished
    ]
    done = [outcome for outcome in outcomes if outcome.succeeded]
    ctx.event(
        "branches.joined",
        node=node.name,
        total=total,
        succeeded=len(done),
        failed=len(outcomes) - len(done),
    )
    if progress["stopped"] == "budget":
        return [
            Fail(
                Failure(
                    "budget",
                    f"{node.name}: the run's budget could not hold another branch; "
                    f"{len(outcomes)} of {total} ran, {len(done)} succeeded; raise the "
                    "workflow's budget_usd, or give the fan-out fewer items",
                    joined_text(outcomes),
                )
            )
        ]
    if not done:
        first = outcomes[0].error if outcomes else "failed"
        return [Fail(Failure("error", f"{node.name}: all {total} branch(es) failed: {first}"))]
    if node.join.merge is not None:
        merged = ctx.call(node.join.merge, "join", [outcome.output or "" for outcome in done])
        if not isinstance(merged, str):
            raise NodeError(
                f"{node.name}: its join function {node.join.merge.path} must return text, it "
                f"returned {type(merged).__name__}"
            )
        text = merged
    else:
        text = joined_text(outcomes)
    if node.join.agent is not None:
        return [CallJoin(node.join.agent, Handoff(f"Outputs of {node.name}'s branches", text))]
    return [Finish(text)]


def frame_label(node: FanOutNode | ParallelNode, frame: FrameState) -> str:
    """What the join's header calls a branch: its item, or its first node."""
    if isinstance(node, FanOutNode):
        return label_of(frame.input)
    return node.branches[frame.index][0].name
