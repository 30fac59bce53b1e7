"""Per workflow type, the rolling mean and variance of what its finished runs cost, in Redis.

One Lua script (``storage/lua/cost_stats.lua``) adds a run and returns the statistics it is
judged against, so every worker of every pod keeps one set of figures. Keys, under
``<prefix>agentyard:costs:{<team>}:``: ``stats:<workflow>`` (a hash: n, mean, var) and
``alerted:<run id>`` (kept a week: a run raises one alert).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import redis

from storage.redis_client import lua_script, text_of

ALERT_MEMORY_S = 7 * 86400


@dataclass(frozen=True, slots=True)
class CostStats:
    runs: int
    mean_micro: float
    variance: float

    @property
    def deviation_micro(self) -> float:
        return math.sqrt(max(self.variance, 0.0))


class CostStatsStore:
    def __init__(self, client: redis.Redis, team: str, key_prefix: str = "") -> None:
        self._client = client
        self.prefix = f"{key_prefix}agentyard:costs:{{{team}}}:"
        self._add = lua_script(client, "cost_stats")

    def add_run(self, workflow: str, cost_micro: int, window: int) -> CostStats:
        """Count one finished run; returns the statistics from before it."""
        n, mean, var = self._add(
            keys=[f"{self.prefix}stats:{workflow}"], args=[int(cost_micro), int(window)]
        )
        return CostStats(int(n), float(mean), float(var))

    def stats(self, workflow: str) -> CostStats:
        found = self._client.hgetall(f"{self.prefix}stats:{workflow}")
        values = {text_of(k): text_of(v) for k, v in found.items()}
        return CostStats(
            int(values.get("n", 0)), float(values.get("mean", 0)), float(values.get("var", 0))
        )

    def first_alert(self, run_id: str) -> bool:
        """True for the first caller only: a run raises one alert, whoever notices it."""
        return bool(
            self._client.set(f"{self.prefix}alerted:{run_id}", 1, nx=True, ex=ALERT_MEMORY_S)
        )
