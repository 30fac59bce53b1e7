"""When a loop stops: the rules, as pure functions over the drafts and verdicts so far.

After each iteration, in this order: ``until(verdict)`` true stops it (``until``); with
``converge_at=t``, a draft at least ``t`` similar to the previous one stops it (``converged``),
and one at least ``t`` similar to the draft two iterations back while the one between differs
stops it (``oscillating``: the agents are going round in circles); the last allowed iteration
stops it (``max_iterations``). Before an iteration starts, a run whose remaining budget cannot
hold that iteration's worst case does not start it (``budget``). Nothing here calls a model or
touches a store: the interpreter hands over what it has.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from rapidfuzz import fuzz, utils

StopReason = Literal["until", "converged", "oscillating", "max_iterations", "budget"]
Similarity = Callable[[str, str], float]


def lexical_similarity(a: str, b: str) -> float:
    """How alike two texts are, 0 to 1: the normalized Indel similarity of their words, case
    and punctuation aside (rapidfuzz's ``ratio``). Fast on long drafts; for meaning rather than
    wording, give the loop a ``similarity`` of your own (embeddings, for instance)."""
    return fuzz.ratio(a, b, processor=utils.default_process) / 100.0


@dataclass(frozen=True, slots=True)
class LoopRules:
    max_iterations: int
    until: Callable[[str], bool] | None = None
    converge_at: float | None = None
    similarity: Similarity = lexical_similarity


@dataclass(frozen=True, slots=True)
class Verdict:
    """What an iteration's end says: stop (and why), and the similarity that decided it."""

    stop: StopReason | None
    similarity: float | None = None


def after_iteration(
    rules: LoopRules, drafts: Sequence[str], verdict: str, iteration: int | None = None
) -> Verdict:
    """Whether the loop stops after the iteration that made ``drafts[-1]`` and ``verdict``.
    ``drafts`` holds the drafts so far, oldest first: every one, or the last three at least
    with ``iteration`` saying which iteration made the last (1-based)."""
    iteration = len(drafts) if iteration is None else iteration
    if rules.until is not None and rules.until(verdict):
        return Verdict("until")
    last: float | None = None
    if rules.converge_at is not None and len(drafts) >= 2:
        last = _bounded(rules.similarity(drafts[-2], drafts[-1]))
        if last >= rules.converge_at:
            return Verdict("converged", last)
        if len(drafts) >= 3:
            back = _bounded(rules.similarity(drafts[-3], drafts[-1]))
            if back >= rules.converge_at:
                return Verdict("oscillating", back)
    if iteration >= rules.max_iterations:
        return Verdict("max_iterations", last)
    return Verdict(None, last)


def may_start(remaining_micro: int | None, iteration_worst_case_micro: int) -> bool:
    """Whether the run's budget can hold one more iteration (None: the run has no budget)."""
    return remaining_micro is None or iteration_worst_case_micro <= remaining_micro


def _bounded(value: float) -> float:
    """A similarity function's answer, held to 0..1 (a user's function may stray)."""
    return min(1.0, max(0.0, float(value)))
