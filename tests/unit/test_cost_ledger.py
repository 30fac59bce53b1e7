"""The cost ledger and the spend counters rebuilt from it (fakeredis, SQLite)."""

from __future__ import annotations

from tests.conftest import TeamFactory
from tests.cost_scenarios import caps_hold_after_redis_loses_its_counters, register


def test_caps_still_hold_after_redis_loses_its_counters(inline_team: TeamFactory) -> None:
    orc, bus = inline_team()
    register(orc)
    caps_hold_after_redis_loses_its_counters(orc, bus)
