"""Spend caps after Redis loses its data, on a real Redis and PostgreSQL."""

from __future__ import annotations

import pytest

from orchestration import Orchestrator, Settings
from tests.cost_scenarios import caps_hold_after_redis_loses_its_counters, register
from tests.support import InlineBus

pytestmark = pytest.mark.integration


def test_caps_still_hold_after_redis_loses_its_counters(server_settings: Settings) -> None:
    bus = InlineBus(server_settings.effective_database_url)
    orc = Orchestrator("ledger", server_settings, bus=bus)
    register(orc)
    caps_hold_after_redis_loses_its_counters(orc, bus)
