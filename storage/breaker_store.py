"""Circuit breakers in Redis: one per agent, the same for every worker of every pod.

Two Lua scripts make every transition (``storage/lua/breaker_*.lua``): closed -> open after
``threshold`` failures within a window; open for ``reset_s``; then half-open, where exactly one
call (the probe, holding a lease) goes through: its success closes the breaker, its failure
re-opens it with a fresh deadline. Time is Redis's own.

Key, under ``<prefix>agentyard:breaker:{<team>}:``: ``<agent id>``, a hash (state, failures,
window_until, open_until, probe, probe_until, opened: how many times it opened).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import redis

from storage.redis_client import lua_script, text_of


class Decision(StrEnum):
    ALLOW = "allow"  # closed: go ahead
    PROBE = "probe"  # half-open: this call is the one probe
    REJECT = "reject"  # open, or half-open with a probe under way: do not call the provider


@dataclass(frozen=True, slots=True)
class Verdict:
    decision: Decision
    retry_in_s: float  # when rejected: how long until a call may go through again


@dataclass(frozen=True, slots=True)
class BreakerState:
    agent: str
    state: str
    failures: int
    opened: int  # times it opened
    open_for_s: float  # while open: seconds left


class BreakerStore:
    def __init__(self, client: redis.Redis, team: str, key_prefix: str = "") -> None:
        self._client = client
        self.prefix = f"{key_prefix}agentyard:breaker:{{{team}}}:"
        self._acquire = lua_script(client, "breaker_acquire")
        self._record = lua_script(client, "breaker_record")

    def acquire(
        self, agent: str, call_id: str, probe_lease_s: float, wait_hint_s: float = 1.0
    ) -> Verdict:
        """``wait_hint_s``: the longest wait to suggest while another call is the probe."""
        decision, seconds = self._acquire(
            keys=[self.prefix + agent], args=[call_id, float(probe_lease_s), float(wait_hint_s)]
        )
        return Verdict(Decision(text_of(decision)), float(text_of(seconds)))

    def record(
        self,
        agent: str,
        call_id: str,
        success: bool,
        *,
        threshold: int,
        window_s: float,
        reset_s: float,
    ) -> str:
        """Count the outcome of a call; returns the state the breaker is in afterwards."""
        return text_of(
            self._record(
                keys=[self.prefix + agent],
                args=[
                    call_id,
                    "success" if success else "failure",
                    int(threshold),
                    float(window_s),
                    float(reset_s),
                ],
            )
        )

    def not_made(self, agent: str, call_id: str) -> None:
        """A call the breaker let through was not made after all: if it was the half-open
        breaker's probe, the next call may be the probe at once (not after the probe's lease)."""
        # The script reads its threshold, window and reset only for a failure: these are fillers.
        self._record(keys=[self.prefix + agent], args=[call_id, "not_made", 1, 1.0, 1.0])

    def state(self, agent: str) -> BreakerState:
        return self.states([agent])[0]

    def states(self, agents: list[str]) -> list[BreakerState]:
        """The breakers of ``agents`` as they are now, in that order; one round trip."""
        pipe = self._client.pipeline(transaction=False)
        pipe.time()
        for agent in agents:
            pipe.hgetall(self.prefix + agent)
        (seconds, micros), *hashes = pipe.execute()
        now = int(seconds) + int(micros) / 1e6
        return [_state_of(agent, found, now) for agent, found in zip(agents, hashes, strict=True)]


def _state_of(agent: str, raw: dict[Any, Any], now: float) -> BreakerState:
    found = {text_of(k): text_of(v) for k, v in raw.items()}
    state = found.get("state", "closed")
    open_until = float(found.get("open_until", 0))
    return BreakerState(
        agent=agent,
        state=state,
        failures=int(found.get("failures", 0)),
        opened=int(found.get("opened", 0)),
        open_for_s=max(0.0, open_until - now) if state == "open" else 0.0,
    )
