"""What a user writes to shape a workflow: ``step``, ``check``, ``verify``, ``approval``, ``loop``,
``fan_out``, ``parallel``, ``route``.

Each checks its own arguments at once (``InvalidDefinition`` saying what it got and what it
takes) and returns an unnamed node; ``Workflow`` names them all when it is built. Functions are
kept by reference (see ``functions.py``): define them at the top level of the team's module.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from orchestration.definitions import ID_PATTERN
from orchestration.workflow.functions import FunctionRef
from orchestration.workflow.graph import (
    DAY_S,
    MAX_APPROVAL_WAIT_S,
    MAX_ITERATIONS,
    Against,
    ApprovalNode,
    CheckNode,
    FanOutNode,
    Item,
    Join,
    LoopNode,
    OnFailure,
    OnLimit,
    OnTimeout,
    ParallelNode,
    RouteNode,
    StepNode,
    VerifyNode,
    as_nodes,
)
from storage.errors import InvalidDefinition

Predicate = Callable[[str], bool]
Splitter = Callable[[str], list[str]]
Classifier = Callable[[str], str]
Merge = Callable[[list[str]], str]
Similarity = Callable[[str, str], float]
Check = Callable[..., Any]  # fn(output: str, run: RunView) -> Verdict


MAX_REASKS = 10


def step(agent: str, *, checks: Sequence[Check] = (), max_reasks: int = 1) -> StepNode:
    """One call of ``agent``, on the previous node's output. Each of ``checks`` judges the
    output before it goes on; a refused one is asked for again with the reason, at most
    ``max_reasks`` times, then goes to the agent's fallback, then fails the run."""
    if not isinstance(agent, str) or not agent:
        raise InvalidDefinition(f"step(agent) takes an agent id, got {agent!r}")
    if isinstance(checks, str) or not isinstance(checks, Sequence):
        raise InvalidDefinition(f"step(checks) takes a list of check functions, got {checks!r}")
    return StepNode(
        agent,
        checks=tuple(FunctionRef.of(fn, "step(checks=[...])") for fn in checks),
        max_reasks=_reasks("step(max_reasks)", max_reasks),
    )


def check(fn: Check, *, max_reasks: int = 1) -> CheckNode:
    """A checkpoint: ``fn(output, run) -> Verdict`` judges the previous node's output, which
    goes on unchanged when accepted. A refused output of a step is asked for again with the
    reason (at most ``max_reasks`` times, then the agent's fallback); else the run fails."""
    return CheckNode(
        FunctionRef.of(fn, "check(fn)"), max_reasks=_reasks("check(max_reasks)", max_reasks)
    )


def verify(agent: str, *, against: Against = "facts", max_reasks: int = 1) -> VerifyNode:
    """A checkpoint ``agent`` keeps: it judges the previous node's output against the run's
    facts (``orc.submit(..., facts=[...])``) or its input (``against="input"``), answering
    ``{"ok": ..., "reason": ...}``; the output goes on unchanged when accepted, and a refused
    one is asked for again as a check's is."""
    if not isinstance(agent, str) or not agent:
        raise InvalidDefinition(f"verify(agent) takes an agent id, got {agent!r}")
    _one_of("verify(against)", against, ("facts", "input"))
    return VerifyNode(agent, against, _reasks("verify(max_reasks)", max_reasks))


def approval(
    gate: str, *, timeout_s: float | None = DAY_S, on_timeout: OnTimeout = "reject"
) -> ApprovalNode:
    """A gate a person keeps: the output of the node before it waits for their approval
    (``orc.approve(run_id, gate, by=...)``; the run holds no worker while it waits), then goes on
    unchanged; rejected (``orc.reject``), the run ends ``rejected``. Nobody deciding within
    ``timeout_s`` (a day; None: no limit but the run's deadline) applies ``on_timeout``:
    ``reject``, ``approve`` or ``fail`` (the gate fails as a step that failed does)."""
    if not isinstance(gate, str) or re.fullmatch(ID_PATTERN, gate) is None:
        raise InvalidDefinition(
            "approval(gate) must be 1-63 lower-case letters, digits, '-' or '_', starting with "
            f"a letter or digit (people approve it by that name), got {gate!r}"
        )
    if timeout_s is not None and (
        isinstance(timeout_s, bool)
        or not isinstance(timeout_s, int | float)
        or not 0 < timeout_s <= MAX_APPROVAL_WAIT_S
    ):
        raise InvalidDefinition(
            f"approval(timeout_s) must be a number of seconds over 0 and at most "
            f"{MAX_APPROVAL_WAIT_S:.0f} (366 days), or None for no limit, got {timeout_s!r}"
        )
    _one_of("approval(on_timeout)", on_timeout, ("reject", "approve", "fail"))
    return ApprovalNode(
        gate, None if timeout_s is None else float(timeout_s), on_timeout=on_timeout
    )


def _reasks(role: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_REASKS:
        raise InvalidDefinition(
            f"{role} must be a whole number from 0 to {MAX_REASKS}, got {value!r}"
        )
    return value


def loop(
    body: Sequence[Item] | Item,
    *,
    max_iterations: int,
    until: Predicate | None = None,
    converge_at: float | None = None,
    on_limit: OnLimit = "fail",
    similarity: Similarity | None = None,
) -> LoopNode:
    """Run ``body`` again and again: its first node makes the draft, its last the verdict that
    goes back to the first with the draft. Stops on ``until(verdict)``, on a draft at least
    ``converge_at`` similar to the last one (or to the one before it: oscillating), on
    ``max_iterations``, or when the run's budget cannot hold another iteration."""
    nodes = as_nodes(body, "loop(body)")
    if isinstance(max_iterations, bool) or not isinstance(max_iterations, int):
        raise InvalidDefinition(
            f"loop(max_iterations) must be a whole number, got {max_iterations!r}"
        )
    if not 1 <= max_iterations <= MAX_ITERATIONS:
        raise InvalidDefinition(
            f"loop(max_iterations) must be from 1 to {MAX_ITERATIONS}, got {max_iterations}"
        )
    if converge_at is not None and not (
        isinstance(converge_at, int | float) and math.isfinite(converge_at) and 0 < converge_at <= 1
    ):
        raise InvalidDefinition(
            f"loop(converge_at) must be a similarity over 0 and at most 1, got {converge_at!r}"
        )
    _one_of("loop(on_limit)", on_limit, ("fail", "best"))
    return LoopNode(
        body=nodes,
        max_iterations=max_iterations,
        until=None if until is None else FunctionRef.of(until, "loop(until=...)"),
        converge_at=None if converge_at is None else float(converge_at),
        on_limit=on_limit,
        similarity=None
        if similarity is None
        else FunctionRef.of(similarity, "loop(similarity=...)"),
    )


def fan_out(
    node: Sequence[Item] | Item,
    *,
    over: Splitter,
    max_parallel: int | None = None,
    join: str | Merge | None = None,
    on_failure: OnFailure = "fail_fast",
) -> FanOutNode:
    """Run ``node`` (an agent id, a node, or a list of them) once per item of
    ``over(previous output)``, at most ``max_parallel`` at a time; then join every branch's
    output, in item order."""
    nodes = as_nodes(node, "fan_out(node)")
    if max_parallel is not None and (
        isinstance(max_parallel, bool) or not isinstance(max_parallel, int) or max_parallel < 1
    ):
        raise InvalidDefinition(
            f"fan_out(max_parallel) must be a whole number of at least 1, or None, got "
            f"{max_parallel!r}"
        )
    _one_of("fan_out(on_failure)", on_failure, ("fail_fast", "collect"))
    return FanOutNode(
        body=nodes,
        over=FunctionRef.of(over, "fan_out(over=...)"),
        max_parallel=max_parallel,
        join=_join(join, "fan_out(join=...)"),
        on_failure=on_failure,
    )


def parallel(
    branches: Sequence[Sequence[Item] | Item],
    *,
    join: str | Merge | None = None,
    on_failure: OnFailure = "fail_fast",
) -> ParallelNode:
    """Run fixed branches side by side (each an agent id, a node, or a list of them), then join
    their outputs in branch order."""
    if isinstance(branches, str) or not isinstance(branches, Sequence) or not branches:
        raise InvalidDefinition(
            f"parallel(branches) takes a list of at least one branch, got {branches!r}"
        )
    _one_of("parallel(on_failure)", on_failure, ("fail_fast", "collect"))
    return ParallelNode(
        branches=tuple(
            as_nodes(branch, f"parallel(branches)[{i}]") for i, branch in enumerate(branches)
        ),
        join=_join(join, "parallel(join=...)"),
        on_failure=on_failure,
    )


def route(
    *,
    by: Classifier,
    branches: Mapping[str, Sequence[Item] | Item],
    default: str | None = None,
) -> RouteNode:
    """Run the branch whose label ``by(previous output)`` returns (``default``'s when the label
    is not one of them; without a default, an unknown label fails the run, saying so)."""
    if not isinstance(branches, Mapping) or not branches:
        raise InvalidDefinition(
            f"route(branches) takes a mapping of labels to branches, got {branches!r}"
        )
    for label in branches:
        if not isinstance(label, str) or not label or "/" in label:
            raise InvalidDefinition(
                f"route(branches): a label must be non-empty text without '/', got {label!r}"
            )
    if default is not None and default not in branches:
        raise InvalidDefinition(
            f"route(default) must be one of the labels {sorted(branches)}, got {default!r}"
        )
    return RouteNode(
        by=FunctionRef.of(by, "route(by=...)"),
        branches=tuple(
            (label, as_nodes(branch, f"route(branches)[{label!r}]"))
            for label, branch in branches.items()
        ),
        default=default,
    )


def _join(join: str | Merge | None, role: str) -> Join:
    if join is None:
        return Join()
    if isinstance(join, str):
        return Join(agent=join)
    return Join(merge=FunctionRef.of(join, role))


def _one_of(role: str, value: object, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise InvalidDefinition(
            f"{role} must be one of {', '.join(repr(a) for a in allowed)}, got {value!r}"
        )
