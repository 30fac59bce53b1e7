"""A loop: its body runs again and again, one iteration (a frame) at a time, until it stops.

The body's first node makes the draft; its last node's output, the verdict, goes back to the
first with the draft in the next iteration. After each iteration the rules of ``loop_guard.py``
say whether it stops (``until``, ``converged``, ``oscillating``, ``max_iterations``); before
each, whether the run's budget can hold one more (``budget``). The whole body runs in every
iteration, the one where a stop is found included. What flows on is the last draft. Stopped by
``max_iterations`` or ``budget``, a loop with ``on_limit="fail"`` fails the run with a
``LoopLimitReached`` error; with ``"best"`` it goes on with the last draft.

Its progress: the iteration under way, the two drafts before it (for the oscillation rule), and,
once it stopped, why and the similarity that decided it.
"""

from __future__ import annotations

from orchestration.workflow.graph import LoopNode, Node, StepNode
from orchestration.workflow.kinds.base import Action, Begin, Fail, Finish, NodeContext, NodeError
from orchestration.workflow.loop_guard import LoopRules, StopReason, after_iteration, may_start
from orchestration.workflow.state import Failure, FrameState, Handoff
from storage.errors import LoopLimitReached


def sequence(node: LoopNode, index: int) -> tuple[Node, ...]:
    return node.body


def start(ctx: NodeContext) -> list[Action]:
    ctx.run.progress = {"iteration": 0, "drafts": [], "stopped_by": None, "similarity": None}
    return _next(ctx, Handoff(ctx.run.input_label, ctx.run.input, ctx.run.input_source))


def frame_done(ctx: NodeContext, frame: FrameState) -> list[Action]:
    node: LoopNode = ctx.node
    progress = ctx.run.progress
    draft = frame.first_output if frame.first_output is not None else frame.output or ""
    verdict = frame.output or ""
    drafts = [*progress["drafts"], draft]
    outcome = after_iteration(_rules(ctx), drafts, verdict, iteration=frame.index)
    progress["drafts"] = drafts[-2:]
    progress["similarity"] = outcome.similarity
    ctx.event(
        "loop.iteration_done",
        node=node.name,
        iteration=frame.index,
        similarity=None if outcome.similarity is None else round(outcome.similarity, 4),
        stopped_by=outcome.stop,
    )
    if outcome.stop is not None:
        return _stop(ctx, outcome.stop, draft)
    last = node.body[-1]
    critic = last.agent if isinstance(last, StepNode) else last.name
    given = (
        Handoff(f"Your draft from iteration {frame.index}", draft)
        if len(node.body) == 1
        else Handoff(
            f"Your draft from iteration {frame.index}, and the verdict on it",
            f"{draft}\n\nVerdict ({critic}):\n{verdict}",
        )
    )
    return _next(ctx, given)


def frame_failed(ctx: NodeContext, frame: FrameState, failure: Failure) -> list[Action]:
    return [
        Fail(
            Failure(
                failure.kind,
                f"{ctx.node.name}, iteration {frame.index}: {failure.message}",
                failure.output,
            )
        )
    ]


def _next(ctx: NodeContext, given: Handoff) -> list[Action]:
    """Start the next iteration, if the run's budget can hold it."""
    progress = ctx.run.progress
    iteration = progress["iteration"] + 1
    frame = ctx.open(iteration, given)
    worst = 0 if ctx.remaining_micro is None else ctx.worst_case_micro(frame)
    if not may_start(ctx.remaining_micro, worst):
        ctx.event(
            "loop.unaffordable",
            node=ctx.node.name,
            iteration=iteration,
            worst_case_micro=worst,
            remaining_micro=ctx.remaining_micro,
        )
        drafts = progress["drafts"]
        return _stop(ctx, "budget", drafts[-1] if drafts else ctx.run.input)
    frame.held_micro = worst
    progress["iteration"] = iteration
    return [Begin(frame)]


def _stop(ctx: NodeContext, reason: StopReason, draft: str) -> list[Action]:
    node: LoopNode = ctx.node
    progress = ctx.run.progress
    progress["stopped_by"] = reason
    iterations = progress["iteration"]
    if reason in ("max_iterations", "budget") and node.on_limit == "fail":
        why = (
            f"its {node.max_iterations} iteration(s) ran out without until or convergence"
            if reason == "max_iterations"
            else "the run's budget cannot hold another iteration"
        )
        fix = (
            "raise max_iterations, set converge_at, or give it on_limit='best' to go on with "
            "the last draft"
            if reason == "max_iterations"
            else "raise the workflow's budget_usd, or give it on_limit='best'"
        )
        return [
            Fail(
                Failure(
                    "loop_limit",
                    f"{LoopLimitReached.__name__}: loop {node.name} stopped after {iterations} "
                    f"iteration(s) ({reason}): {why}; {fix}",
                    draft,
                )
            )
        ]
    return [Finish(draft)]


def _rules(ctx: NodeContext) -> LoopRules:
    node: LoopNode = ctx.node
    until = node.until
    similarity = node.similarity

    def until_(verdict: str) -> bool:
        assert until is not None
        answer = ctx.call(until, "until", verdict)
        if not isinstance(answer, bool):
            raise NodeError(
                f"{node.name}: its until function {until.path} must return True or False, it "
                f"returned {type(answer).__name__}"
            )
        return answer

    def similarity_(a: str, b: str) -> float:
        assert similarity is not None
        answer = ctx.call(similarity, "similarity", a, b)
        if isinstance(answer, bool) or not isinstance(answer, int | float):
            raise NodeError(
                f"{node.name}: its similarity function {similarity.path} must return a number "
                f"from 0 to 1, it returned {type(answer).__name__}"
            )
        return float(answer)

    rules = LoopRules(
        max_iterations=node.max_iterations,
        until=None if until is None else until_,
        converge_at=node.converge_at,
    )
    if similarity is None:
        return rules
    return LoopRules(rules.max_iterations, rules.until, rules.converge_at, similarity_)
