"""How a trace reads to a person: what a status means (its tone, which renderers colour), and
money and time written the same way in the tree, the graph and the tables."""

from __future__ import annotations

from enum import StrEnum

from storage.models import StepStatus, WorkflowStatus

_SUCCEEDED = "succeeded"


class Tone(StrEnum):
    """What a status or an outcome means to someone reading the trace (renderers colour it)."""

    OK = "ok"  # succeeded
    FAILED = "failed"  # a call that failed, a step or run that failed
    REFUSED = "refused"  # not made: a spend cap or an open breaker turned it away
    WAITING = "waiting"  # pending: its turn, a retry's due time or a person's decision
    ACTIVE = "active"  # dispatched or running


_REFUSED = {"breaker_open", "cost_limit_exceeded", "budget_exceeded"}
_WAITING = {
    StepStatus.PENDING.value,
    StepStatus.ATTEMPT_FAILED.value,
    WorkflowStatus.WAITING_APPROVAL.value,
}
_ACTIVE = {StepStatus.DISPATCHED.value, StepStatus.RUNNING.value}


def tone_of(status: str) -> Tone:
    """The tone of a run's or step's status, or of a call's outcome."""
    if status == _SUCCEEDED:
        return Tone.OK
    if status in _REFUSED:
        return Tone.REFUSED
    if status in _WAITING:
        return Tone.WAITING
    if status in _ACTIVE:
        return Tone.ACTIVE
    return Tone.FAILED


def format_usd(micro: int) -> str:
    """Money as the trace shows it: ``$0.000327``."""
    return f"${micro / 1e6:.6f}"


def format_duration(seconds: float) -> str:
    """A latency or a duration as the trace shows it: ``0.4ms``, ``35ms``, ``2.51s``."""
    if seconds >= 1:
        return f"{seconds:.2f}s"
    ms = seconds * 1000
    return f"{ms:.1f}ms" if ms < 10 else f"{ms:.0f}ms"
