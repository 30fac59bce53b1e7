"""Runs that cost far more than their workflow type usually does.

Per workflow type, the cost of its finished runs is kept as a rolling mean and deviation
(``storage.cost_stats_store``). Once ``AGENTYARD_ANOMALY_MIN_RUNS`` runs have finished, a run
whose cost passes the line, ``mean + AGENTYARD_ANOMALY_DEVIATIONS x deviation`` (and at least
10 % over the mean, so that a type whose runs all cost the same does not alert on a cent), raises
one alert: a ``cost.anomaly`` log event, a row in ``cost_alerts``, and a JSON POST to
``AGENTYARD_ALERT_WEBHOOK_URL`` when one is set. A run under way is checked after each of its
calls (against statistics at most a few seconds old), so it alerts when it crosses the line,
before it finishes.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import structlog

from orchestration import webhooks
from storage.cost_stats_store import CostStats, CostStatsStore
from storage.db import session_scope
from storage.models import CostAlertRow, utcnow
from storage.settings import Settings

log = structlog.get_logger(__name__)

MIN_EXCESS = 0.10  # the line is at least this far over the mean
# A run under way is judged against statistics at most this old (they move slowly; reading
# them after every call would cost a Redis round trip per step).
STATS_FRESH_S = 5.0


@dataclass(frozen=True, slots=True)
class Alert:
    team: str
    workflow_id: str
    workflow: str
    cost_micro: int
    stats: CostStats
    threshold_micro: int
    finished: bool


class AnomalyWatch:
    def __init__(self, store: CostStatsStore, settings: Settings, team: str) -> None:
        self._store = store
        self._settings = settings
        self._team = team
        self._url = settings.effective_database_url
        self._cache: dict[str, tuple[float, CostStats]] = {}

    def threshold_micro(self, stats: CostStats) -> int | None:
        """Where the alert line is for these statistics; None until enough runs finished."""
        if stats.runs < self._settings.anomaly_min_runs:
            return None
        excess = max(
            self._settings.anomaly_deviations * stats.deviation_micro,
            MIN_EXCESS * stats.mean_micro,
        )
        return math.ceil(stats.mean_micro + excess)

    def after_call(self, run_id: str, workflow: str, cost_micro: int, finished: bool) -> None:
        """Judge a run by its cost so far; a finished run also joins its type's statistics."""
        if finished:
            stats = self._store.add_run(workflow, cost_micro, self._settings.anomaly_window)
            self._cache.pop(workflow, None)  # changed: read them afresh next time
        else:
            stats = self._recent_stats(workflow)
        line = self.threshold_micro(stats)
        if line is None or cost_micro <= line or not self._store.first_alert(run_id):
            return
        self._raise(Alert(self._team, run_id, workflow, cost_micro, stats, line, finished))

    def _recent_stats(self, workflow: str) -> CostStats:
        now = time.monotonic()
        cached = self._cache.get(workflow)
        if cached is not None and now - cached[0] < STATS_FRESH_S:
            return cached[1]
        stats = self._store.stats(workflow)
        self._cache[workflow] = (now, stats)
        return stats

    def _raise(self, alert: Alert) -> None:
        fields: dict[str, Any] = {
            "team": alert.team,
            "workflow_id": alert.workflow_id,
            "workflow": alert.workflow,
            "cost_micro": alert.cost_micro,
            "mean_micro": round(alert.stats.mean_micro),
            "deviation_micro": round(alert.stats.deviation_micro),
            "threshold_micro": alert.threshold_micro,
            "runs": alert.stats.runs,
            "finished": alert.finished,
        }
        log.warning("cost.anomaly", **fields)
        with session_scope(self._url) as session:
            session.add(CostAlertRow(**fields, created_at=utcnow()))
        if self._settings.alert_webhook_url:  # the alert is on record already
            webhooks.post(
                self._settings.alert_webhook_url,
                {"event": "cost.anomaly", **fields},
                "cost.anomaly_webhook_failed",
            )
