"""The gauges of shared state, read from Redis at each scrape (fakeredis), and the /metrics
endpoint a worker serves: on a free port, once, and never fatal when its port is taken."""

from __future__ import annotations

import socket
import threading
import urllib.request
from collections.abc import Iterator

import fakeredis
import pytest
from celery.signals import worker_init
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from bus.broker_view import BrokerView
from orchestration import Agent, Orchestrator, Settings, Workflow, cli
from storage.breaker_store import BreakerStore
from storage.budget_store import BudgetStore, Cap
from tests.support import InlineBus, free_port
from workers.logging import configure_logging
from workers.metrics import WorkerMetrics

AGENTS = ["researcher", "writer"]
QUEUES = ["agent.researcher", "agent.writer", "coordinator"]


def _metrics(client: fakeredis.FakeRedis, prefix: str = "") -> WorkerMetrics:
    return WorkerMetrics(
        agents=lambda: list(AGENTS),
        queues=lambda: list(QUEUES),
        breakers=BreakerStore(client, team="t", key_prefix=prefix),
        budget=BudgetStore(client, team="t", key_prefix=prefix),
        broker=BrokerView(client, prefix),
    )


def _scrape(metrics: WorkerMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The registry as Prometheus would read it: {(sample name, labels): value}."""
    text = generate_latest(metrics.registry).decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_queue_depth_sums_every_priority_band_of_each_queue() -> None:
    client = fakeredis.FakeRedis()
    metrics = _metrics(client, prefix="p:")
    view = BrokerView(client, "p:")
    for band, key in enumerate(view.band_keys("agent.writer")):
        if band in (0, 3, 9):
            client.rpush(key, *[f"message {n}" for n in range(band + 1)])  # 1 + 4 + 10

    seen = _scrape(metrics)

    assert seen[("agentyard_queue_depth", (("queue", "agent.writer"),))] == 15
    assert seen[("agentyard_queue_depth", (("queue", "agent.researcher"),))] == 0
    assert seen[("agentyard_queue_depth", (("queue", "coordinator"),))] == 0
    assert seen[("agentyard_scrape_error", (("source", "queues"),))] == 0


def test_breaker_state_is_0_closed_1_half_open_2_open() -> None:
    client = fakeredis.FakeRedis()
    store = BreakerStore(client, team="t")
    metrics = _metrics(client)
    # The researcher's breaker opens for five minutes; the writer's opens with no time to wait.
    store.record("researcher", "c1", False, threshold=1, window_s=60, reset_s=300)
    store.record("writer", "c2", False, threshold=1, window_s=60, reset_s=0)

    seen = _scrape(metrics)
    assert seen[("agentyard_breaker_state", (("agent", "researcher"),))] == 2
    assert seen[("agentyard_breaker_state", (("agent", "writer"),))] == 1  # its next call probes

    store.acquire("writer", "c3", probe_lease_s=30)  # the probe is under way: half-open
    store.record("researcher", "c4", True, threshold=1, window_s=60, reset_s=300)
    seen = _scrape(metrics)
    assert seen[("agentyard_breaker_state", (("agent", "writer"),))] == 1
    # A success recorded while open changes nothing: only the probe's success closes it.
    assert seen[("agentyard_breaker_state", (("agent", "researcher"),))] == 2

    store.record("writer", "c3", True, threshold=1, window_s=60, reset_s=0)
    assert _scrape(metrics)[("agentyard_breaker_state", (("agent", "writer"),))] == 0


def test_reservations_held_count_the_open_holds_and_their_dollars_but_not_the_run_out_ones() -> (
    None
):
    client = fakeredis.FakeRedis()
    store = BudgetStore(client, team="t")
    store.restore({})  # the counters are loaded: holds may be taken
    caps = [Cap("agent:researcher", 10_000_000, "day")]
    assert store.reserve("step-1:1", 1_250_000, ttl_s=600, caps=caps) is None
    assert store.reserve("step-2:1", 250_000, ttl_s=600, caps=caps) is None
    assert store.reserve("step-3:1", 5_000_000, ttl_s=0, caps=caps) is None  # its time is up
    metrics = _metrics(client)

    seen = _scrape(metrics)
    assert seen[("agentyard_reservations_held", ())] == 2
    assert seen[("agentyard_reservations_held_usd", ())] == pytest.approx(1.5)

    store.settle("step-1:1", 1_000_000, caps)
    seen = _scrape(metrics)
    assert seen[("agentyard_reservations_held", ())] == 1
    assert seen[("agentyard_reservations_held_usd", ())] == pytest.approx(0.25)


def test_a_redis_error_during_a_scrape_is_a_scrape_error_gauge_and_a_log_line_not_a_failure(
    unit_settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(unit_settings)
    broken = fakeredis.FakeServer()
    broken.connected = False
    healthy = fakeredis.FakeRedis()
    metrics = WorkerMetrics(
        agents=lambda: list(AGENTS),
        queues=lambda: list(QUEUES),
        breakers=BreakerStore(fakeredis.FakeRedis(server=broken), team="t"),
        budget=BudgetStore(healthy, team="t"),
        broker=BrokerView(healthy),
    )

    seen = _scrape(metrics)

    assert seen[("agentyard_scrape_error", (("source", "breakers"),))] == 1
    assert not any(name == "agentyard_breaker_state" for name, _ in seen)
    assert seen[("agentyard_scrape_error", (("source", "queues"),))] == 0
    assert seen[("agentyard_queue_depth", (("queue", "coordinator"),))] == 0
    assert seen[("agentyard_scrape_error", (("source", "reservations"),))] == 0
    logged = "".join(capsys.readouterr())
    assert "metrics.scrape_failed" in logged and "breakers" in logged


@pytest.fixture
def served() -> Iterator[WorkerMetrics]:
    metrics = _metrics(fakeredis.FakeRedis())
    yield metrics
    metrics.stop_serving()


def test_port_0_serves_metrics_on_a_free_port_and_says_which(served: WorkerMetrics) -> None:
    port = served.serve(0)

    assert port is not None and port > 0 and served.port == port
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    names = {family.name for family in text_string_to_metric_families(text)}
    assert {"agentyard_queue_depth", "agentyard_breaker_state", "agentyard_scrape_error"} <= names
    assert served.serve(0) == port  # once: a second call serves nothing more


def test_a_port_already_taken_is_a_warning_naming_port_and_setting_and_nothing_stops(
    served: WorkerMetrics, unit_settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(unit_settings)
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = int(taken.getsockname()[1])

        assert served.serve(port) is None

    assert served.port is None
    logged = "".join(capsys.readouterr())
    assert "metrics.port_unavailable" in logged
    assert str(port) in logged and "AGENTYARD_METRICS_PORT" in logged


class _StartingWorker:
    """What Celery's ``worker_init`` is sent by, as far as the handler looks at it."""

    def __init__(self, orc: Orchestrator, pool_cls: str = "threads") -> None:
        self.app = orc.celery
        self.pool_cls = pool_cls


def _orchestrator(settings: Settings) -> Orchestrator:
    orc = Orchestrator(
        "unit",
        settings,
        bus=InlineBus(settings.effective_database_url),
        redis=fakeredis.FakeRedis(),
    )
    orc.register_agent(Agent(id="solo", model="offline:echo"))
    orc.register_workflow(Workflow.sequence("w", ["solo"]))
    return orc


def test_a_worker_of_the_team_serves_metrics_as_it_starts_on_the_configured_port(
    unit_settings: Settings,
) -> None:
    port = free_port()
    orc = _orchestrator(unit_settings.model_copy(update={"metrics_port": port}))
    other = _orchestrator(unit_settings)
    try:
        worker_init.send(sender=_StartingWorker(other))
        assert orc.metrics().port is None  # another app's worker started

        worker_init.send(sender=_StartingWorker(orc))

        assert orc.metrics().port == port
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
            assert b'agentyard_breaker_state{agent="solo"} 0.0' in response.read()
    finally:
        orc.metrics().stop_serving()
        orc.close()
        other.close()


def test_without_a_metrics_port_a_worker_serves_nothing(unit_settings: Settings) -> None:
    orc = _orchestrator(unit_settings)
    try:
        worker_init.send(sender=_StartingWorker(orc))
        assert orc.metrics().port is None
        assert orc.serve_metrics() is None
    finally:
        orc.close()


@pytest.mark.parametrize("bad", ["-1", "65536", "nine"])
def test_the_worker_command_refuses_a_metrics_port_that_is_not_a_port(
    bad: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.build_parser().parse_args(["worker", "team:orc", "--metrics-port", bad])

    assert exited.value.code == cli.ExitCode.USAGE
    assert "a port number 0..65535" in capsys.readouterr().err


def test_the_worker_command_takes_a_metrics_port() -> None:
    args = cli.build_parser().parse_args(
        ["worker", "team:orc", "--all-agents", "--metrics-port", "0"]
    )
    assert args.metrics_port == 0


def test_a_prefork_worker_is_warned_that_its_step_counts_stay_in_the_pool_processes(
    unit_settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(unit_settings)
    orc = _orchestrator(unit_settings)
    try:
        worker_init.send(
            sender=_StartingWorker(orc, pool_cls="celery.concurrency.prefork:TaskPool")
        )
    finally:
        orc.close()

    logged = "".join(capsys.readouterr())
    assert "metrics.prefork_pool" in logged and "--pool threads" in logged


def test_a_team_on_rabbitmq_builds_its_metrics_without_waiting_on_itself() -> None:
    # The queue reader once asked for the Celery app while the metrics held the lock the app
    # is built under: a worker on RabbitMQ hung as it started.
    settings = Settings(
        redis_url="redis://127.0.0.1:6379/0",
        broker_url="amqp://guest:guest@127.0.0.1:5672//",
        database_url="postgresql://u@h/db",
        _env_file=None,
    )
    orc = Orchestrator("rabbit-metrics", settings)
    built: list[WorkerMetrics] = []
    builder = threading.Thread(target=lambda: built.append(orc.metrics()), daemon=True)

    builder.start()
    builder.join(timeout=30)

    assert not builder.is_alive() and len(built) == 1
