"""Each agent's circuit breaker: when its provider keeps failing, stop calling it for a while.

The state lives in Redis (``storage.breaker_store``), one breaker per agent for every worker.
Before a call the breaker is asked; a call it rejects is not made, and the coordinator sends the
step to the agent's fallback, or lets it wait until the breaker may let a call through again
(such a wait does not use up the agent's retries). After a call the breaker learns how it went:
a failure of the provider's (``ProviderError.provider_failure``: rate limited, overloaded,
unavailable or unreachable, or no answer within the deadline counted from the request sent) is a
failure; any answer from the provider, late or not, an error that no retry would mend included,
is a success. Time the worker loses on its own (starting up, starved of CPU or the GIL, no free
connection in its pool) is never the provider's and never moves the breaker.
"""

from __future__ import annotations

import structlog

from orchestration.definitions import Agent
from storage.breaker_store import BreakerStore, Decision
from storage.errors import AgentyardError, BreakerOpen, ProviderError

log = structlog.get_logger(__name__)


class Breakers:
    def __init__(self, store: BreakerStore | None) -> None:
        """``store`` None (no Redis configured): no breakers, every call goes ahead."""
        self._store = store

    def admit(self, agent: Agent, call_id: str, probe_lease_s: float) -> Decision | BreakerOpen:
        """How the call may go ahead (``ALLOW``, or ``PROBE``); or why it may not."""
        if self._store is None:
            return Decision.ALLOW
        verdict = self._store.acquire(
            agent.id, call_id, probe_lease_s, wait_hint_s=agent.breaker_reset_s
        )
        if verdict.decision is Decision.PROBE:
            log.info("breaker.probe", agent_id=agent.id)
        if verdict.decision is Decision.REJECT:
            return BreakerOpen(agent.id, verdict.retry_in_s)
        return verdict.decision

    def not_made(self, agent: Agent, call_id: str, admitted: Decision) -> None:
        """The call ``admit`` let through was not made (a spend cap refused it): a probe gives
        its place up, so the breaker does not wait out the probe's lease for nothing."""
        if self._store is not None and admitted is Decision.PROBE:
            self._store.not_made(agent.id, call_id)

    def record(
        self, agent: Agent, call_id: str, admitted: Decision, error: AgentyardError | None
    ) -> None:
        if self._store is None:
            return
        failed = isinstance(error, ProviderError) and error.provider_failure
        if admitted is Decision.ALLOW and not failed:
            return  # a success while closed changes nothing: no round trip for it
        state = self._store.record(
            agent.id,
            call_id,
            not failed,
            threshold=agent.breaker_threshold,
            window_s=agent.breaker_window_s,
            reset_s=agent.breaker_reset_s,
        )
        if failed and state == "open":
            log.warning("breaker.open", agent_id=agent.id, reset_s=agent.breaker_reset_s)
