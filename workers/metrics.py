"""agentyard's Prometheus metrics in one process: a registry of its own (never the global one).

Two kinds of figures live in it:

- what this process's step attempts did, counted as they are recorded (``StepMetrics``, the
  step runner's observer): ``agentyard_steps_total{agent, outcome}``,
  ``agentyard_tokens_total{agent, model, kind}``, ``agentyard_cost_usd_total{agent, model}`` and
  ``agentyard_step_latency_seconds{agent}``. Prometheus sums them over the workers;
- the state every worker shares, read from Redis at each scrape
  (``workers.shared_state_metrics``): breakers, queue depths, reservations held.

``WorkerMetrics.serve`` puts the registry on HTTP (``workers.metrics_server``).
"""

from __future__ import annotations

from collections.abc import Callable

import structlog
from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector

from bus.brokers import QueueDepths
from storage.breaker_store import BreakerStore
from storage.budget_store import BudgetStore
from workers.metrics_server import MetricsEndpoint
from workers.providers.base import Usage
from workers.shared_state_metrics import SharedStateCollector

log = structlog.get_logger(__name__)

# Model calls take from tens of milliseconds (a cached, short answer) to minutes (long outputs).
LATENCY_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600)


def tokens_by_kind(usage: Usage) -> dict[str, int]:
    """The billed tokens by kind (cache writes with the 1-hour TTL are part of cache_creation)."""
    return {
        "input": usage.input_tokens,
        "output": usage.output_tokens,
        "cache_creation": usage.cache_creation_input_tokens,
        "cache_read": usage.cache_read_input_tokens,
    }


class StepMetrics:
    """Counts each step attempt once, as the step runner records it (``StepObserver``)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.steps = Counter(
            "agentyard_steps",
            "Step attempts recorded by this worker, by the agent that ran them and their outcome "
            "(succeeded, rate_limited, overloaded, timeout, unavailable, rejected, breaker_open, "
            "cost_limit_exceeded, configuration_error; with tools: tool_approval_needed, an "
            "attempt stopped at a tool call that waits for a person, tool_outcome_unknown, "
            "tool_turns_exhausted).",
            ["agent", "outcome"],
            registry=registry,
        )
        self.tokens = Counter(
            "agentyard_tokens",
            "Tokens billed for this worker's model calls, by kind: input, output, cache_creation "
            "(cache writes), cache_read.",
            ["agent", "model", "kind"],
            registry=registry,
        )
        self.cost = Counter(
            "agentyard_cost_usd",
            "US dollars this worker's model calls cost, at the prices agentyard knows.",
            ["agent", "model"],
            registry=registry,
        )
        self.latency = Histogram(
            "agentyard_step_latency_seconds",
            "How long each model call of a step attempt took (calls the breaker or a spend cap "
            "refused are not made, and not observed).",
            ["agent"],
            buckets=LATENCY_BUCKETS_S,
            registry=registry,
        )

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
        try:
            self.steps.labels(agent_id, outcome).inc()
            # A zero is added too: the series exists from the first attempt on.
            for kind, count in tokens_by_kind(usage).items():
                self.tokens.labels(agent_id, model, kind).inc(count)
            self.cost.labels(agent_id, model).inc(cost_micro / 1_000_000)
            if latency_s is not None:
                self.latency.labels(agent_id).observe(latency_s)
        # Counting a step must never fail the step it counts.
        except Exception as exc:
            log.warning("metrics.count_failed", error=str(exc) or repr(exc))


class WorkerMetrics:
    """The registry a worker's /metrics serves, and the endpoint that serves it."""

    def __init__(
        self,
        *,
        agents: Callable[[], list[str]],
        queues: Callable[[], list[str]],
        breakers: BreakerStore | None,
        budget: BudgetStore | None,
        broker: QueueDepths | None,
    ) -> None:
        """``agents`` and ``queues``: the team's, asked at each scrape. A store that is None
        leaves its gauges out (see ``SharedStateCollector``)."""
        self.registry = CollectorRegistry()
        self.steps = StepMetrics(self.registry)
        self.registry.register(
            SharedStateCollector(
                agents=agents, queues=queues, breakers=breakers, budget=budget, broker=broker
            )
        )
        ProcessCollector(registry=self.registry)
        self._endpoint = MetricsEndpoint(self.registry)

    def serve(self, port: int) -> int | None:
        """Serve /metrics on ``port`` (0: any free port) from now on, once per process. Returns
        the port it listens on, or None when it could not bind (logged; nothing else stops)."""
        return self._endpoint.start(port)

    @property
    def port(self) -> int | None:
        """The port /metrics is served on, if it is."""
        return self._endpoint.port

    def stop_serving(self) -> None:
        self._endpoint.stop()
