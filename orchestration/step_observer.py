"""What the step runner tells an observer about each attempt it records (metrics, for one).

The step runner knows nothing of Prometheus: it reports each attempt once, through this
interface, and the Orchestrator hands it the concrete observer (``workers.metrics``).
"""

from __future__ import annotations

from typing import Protocol

from workers.providers.base import Usage


class StepObserver(Protocol):
    def attempt_recorded(
        self,
        *,
        agent_id: str,
        model: str,
        outcome: str,
        usage: Usage,
        cost_micro: int,
        latency_s: float | None,
    ) -> None:
        """One attempt of a step was recorded: its result or failure, or a result fenced off
        because the attempt's lease ran out meanwhile (the call was made and paid for all the
        same). Called once per attempt, after its transaction committed.

        ``agent_id`` and ``model``: the agent that ran it (a fallback, when one took over) and
        its model. ``outcome``: as the trace row names it (``succeeded``, ``rate_limited``,
        ``overloaded``, ``timeout``, ``unavailable``, ``rejected``, ``breaker_open``,
        ``cost_limit_exceeded``, ``configuration_error``). ``usage``: the tokens billed, by kind.
        ``cost_micro``: what the call cost, in micro-dollars. ``latency_s``: how long the model
        call took, or None when no call was made (the breaker or a spend cap refused it).

        Must not raise, and must be quick: it runs on the step's thread."""
        ...
