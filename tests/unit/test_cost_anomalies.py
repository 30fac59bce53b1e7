"""Runs that cost far more than their workflow type usually does (fakeredis, SQLite)."""

from __future__ import annotations

import statistics

import fakeredis
import pytest
from sqlmodel import select

from orchestration import Agent, Orchestrator, Settings, Workflow, WorkflowStatus
from storage.cost_stats_store import CostStatsStore
from storage.db import session_scope
from storage.models import CostAlertRow
from tests.conftest import Webhook
from tests.support import InlineBus, run_inline


def test_the_rolling_statistics_are_the_plain_mean_and_variance_within_the_window() -> None:
    store = CostStatsStore(fakeredis.FakeRedis(), team="t")
    costs = [1_000, 1_300, 900, 1_100, 5_000, 1_050]
    for cost in costs:
        store.add_run("research", cost, window=100)

    stats = store.stats("research")
    assert stats.runs == len(costs)
    assert stats.mean_micro == pytest.approx(statistics.fmean(costs))
    assert stats.deviation_micro == pytest.approx(statistics.pstdev(costs))


def test_past_the_window_older_runs_weigh_less() -> None:
    store = CostStatsStore(fakeredis.FakeRedis(), team="t")
    for _ in range(50):
        store.add_run("research", 1_000, window=10)
    for _ in range(30):
        store.add_run("research", 2_000, window=10)
    assert store.stats("research").mean_micro == pytest.approx(2_000, rel=0.01)


def _orc(unit_settings: Settings, webhook_url: str) -> tuple[Orchestrator, InlineBus]:
    settings = unit_settings.model_copy(
        update={"anomaly_min_runs": 5, "anomaly_deviations": 3.0, "alert_webhook_url": webhook_url}
    )
    bus = InlineBus(settings.effective_database_url)
    orc = Orchestrator("watch", settings, bus=bus, redis=fakeredis.FakeRedis())
    for agent_id in ("researcher", "writer", "reviewer"):
        orc.register_agent(Agent(id=agent_id, model="offline:echo"))
    orc.register_workflow(Workflow.sequence("research", ["researcher", "writer", "reviewer"]))
    return orc, bus


def _alerts(orc: Orchestrator) -> list[CostAlertRow]:
    with session_scope(orc.database_url) as session:
        return list(session.exec(select(CostAlertRow)).all())


def test_a_run_that_costs_far_more_than_usual_alerts_once_while_still_under_way(
    unit_settings: Settings, webhook: Webhook
) -> None:
    orc, bus = _orc(unit_settings, webhook.url)
    for n in range(5):
        assert run_inline(orc, bus, "research", f"the telegraph, part {n}").status is (
            WorkflowStatus.SUCCEEDED
        )
    assert _alerts(orc) == []  # five ordinary runs: nothing to say

    costly = run_inline(orc, bus, "research", "the telegraph in every detail " * 400)

    [alert] = _alerts(orc)  # one alert, though all three of its calls were over the line
    assert alert.workflow_id == costly.id and alert.workflow == "research"
    assert alert.finished is False  # raised after its first call, before it finished
    assert alert.runs == 5 and alert.cost_micro > alert.threshold_micro > alert.mean_micro
    assert [hook["event"] for hook in webhook.received] == ["cost.anomaly"]
    assert webhook.received[0]["workflow_id"] == costly.id


def test_no_alert_before_enough_runs_have_finished(
    unit_settings: Settings, webhook: Webhook
) -> None:
    orc, bus = _orc(unit_settings, webhook.url)
    run_inline(orc, bus, "research", "the telegraph")
    run_inline(orc, bus, "research", "the telegraph in every detail " * 400)
    assert _alerts(orc) == [] and webhook.received == []
