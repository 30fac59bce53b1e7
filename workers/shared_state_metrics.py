"""Gauges of the state every worker shares, read from Redis when Prometheus scrapes.

The breakers, the queues and the spend-cap reservations live in Redis, not in any one process,
so this collector reads them at each scrape: every worker's /metrics shows the same current
values. A read that fails (Redis down, a timeout) leaves its gauges out of that scrape and sets
``agentyard_scrape_error{source=...}`` to 1, with a log line: the scrape still answers, and the
gauges of the sources that could be read are there.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import structlog
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from bus.brokers import QueueDepths
from storage.breaker_store import BreakerState, BreakerStore
from storage.budget_store import BudgetStore

log = structlog.get_logger(__name__)

CLOSED, HALF_OPEN, OPEN = 0, 1, 2

Read = Callable[[], list[Metric]]


def breaker_value(state: BreakerState) -> int:
    """0 closed, 1 half-open, 2 open. An open breaker whose time is up counts as half-open: the
    next call to the agent is the probe (Redis turns it half-open when that call asks)."""
    if state.state == "open":
        return OPEN if state.open_for_s > 0 else HALF_OPEN
    return HALF_OPEN if state.state == "half_open" else CLOSED


class SharedStateCollector(Collector):
    def __init__(
        self,
        *,
        agents: Callable[[], list[str]],
        queues: Callable[[], list[str]],
        breakers: BreakerStore | None,
        budget: BudgetStore | None,
        broker: QueueDepths | None,
    ) -> None:
        """``agents`` and ``queues`` are asked at each scrape (an agent registered later is
        shown too). A store that is None (no Redis configured, or a broker that is not Redis)
        leaves its gauges out."""
        self._agents = agents
        self._queues = queues
        self._breakers = breakers
        self._budget = budget
        self._broker = broker

    def describe(self) -> Iterator[Metric]:
        """The families without reading Redis (registering the collector reads nothing)."""
        if self._breakers is not None:
            yield _breaker_family()
        if self._broker is not None:
            yield _queue_family()
        if self._budget is not None:
            yield from _reservation_families()
        yield _scrape_errors()

    def collect(self) -> Iterator[Metric]:
        errors = _scrape_errors()
        for source, read in self._sources():
            try:
                families = read()
            # Whatever fails shows as a scrape error and a log line, never as a failed scrape.
            except Exception as exc:
                log.warning("metrics.scrape_failed", source=source, error=str(exc) or repr(exc))
                errors.add_metric([source], 1)
                continue
            errors.add_metric([source], 0)
            yield from families
        yield errors

    def _sources(self) -> Iterator[tuple[str, Read]]:
        breakers, broker, budget = self._breakers, self._broker, self._budget
        if breakers is not None:
            yield "breakers", lambda: self._read_breakers(breakers)
        if broker is not None:
            yield "queues", lambda: self._read_queues(broker)
        if budget is not None:
            yield "reservations", lambda: _read_reservations(budget)

    def _read_breakers(self, store: BreakerStore) -> list[Metric]:
        family = _breaker_family()
        for state in store.states(self._agents()):
            family.add_metric([state.agent], breaker_value(state))
        return [family]

    def _read_queues(self, broker: QueueDepths) -> list[Metric]:
        family = _queue_family()
        for queue, depth in broker.queue_depths(self._queues()).items():
            family.add_metric([queue], depth)
        return [family]


def _read_reservations(store: BudgetStore) -> list[Metric]:
    held = store.held_now()
    count, usd = _reservation_families()
    count.add_metric([], held.count)
    usd.add_metric([], held.micro / 1_000_000)
    return [count, usd]


def _breaker_family() -> GaugeMetricFamily:
    return GaugeMetricFamily(
        "agentyard_breaker_state",
        "Each agent's circuit breaker, shared by every worker: 0 closed (calls go ahead), "
        "1 half-open (the next call is the one probe; an open breaker whose time is up counts "
        "as half-open), 2 open (calls are refused).",
        labels=["agent"],
    )


def _queue_family() -> GaugeMetricFamily:
    return GaugeMetricFamily(
        "agentyard_queue_depth",
        "Messages waiting in each of the team's queues (agent.<id>, coordinator), all priority "
        "bands summed; messages a worker has taken are not counted.",
        labels=["queue"],
    )


def _reservation_families() -> tuple[GaugeMetricFamily, GaugeMetricFamily]:
    return (
        GaugeMetricFamily(
            "agentyard_reservations_held",
            "Spend-cap reservations held now: each call under way holds its worst case until "
            "it settles (a hold whose time ran out is not counted).",
        ),
        GaugeMetricFamily(
            "agentyard_reservations_held_usd",
            "US dollars the spend-cap reservations held now keep from the caps.",
        ),
    )


def _scrape_errors() -> GaugeMetricFamily:
    return GaugeMetricFamily(
        "agentyard_scrape_error",
        "1 when this scrape could not read this source of shared state from Redis (its gauges "
        "are left out; the worker's log says why), 0 when it could.",
        labels=["source"],
    )
