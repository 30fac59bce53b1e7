"""/metrics of real worker processes, scraped over HTTP after a workflow ran on real Redis and
PostgreSQL (the model: the real SDK against the stub server, with a retry and cache tokens).

The agent worker is given its port with ``--metrics-port``, the coordinator with
``AGENTYARD_METRICS_PORT``; the counters must agree with the trace rows in PostgreSQL, and the
gauges with what the test put in Redis."""

from __future__ import annotations

import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlmodel import select

from bus.brokers import broker_for
from orchestration import Orchestrator, WorkflowStatus
from orchestration.pricing import usd_to_micro
from storage.budget_store import Cap
from storage.db import session_scope
from storage.models import TraceRow
from tests.support import free_port
from tests.system.conftest import ROOT, TEAM, stub_env
from workers.processes import WorkerProcess, wait_for_workers
from workers.stub_anthropic import StubAnthropicServer

pytestmark = [pytest.mark.integration, pytest.mark.system]

MODEL = "claude-haiku-4-5"
AGENTS = ("researcher", "writer", "reviewer")
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def _scrape(port: int, keep: Path | None = None) -> Samples:
    """What Prometheus would read from the worker: {(sample name, sorted labels): value}."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    if keep is not None:
        keep.write_text(text)
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _get(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


@pytest.fixture
def extra_env(stub: StubAnthropicServer) -> dict[str, str]:
    return {
        **stub_env(stub),
        "AGENTYARD_SWEEP_INTERVAL_S": "0.5",
        "SAMPLE_TEAM_AGENT_CAP_USD": "100",  # every call holds its worst case first
    }


@dataclass(frozen=True)
class Workers:
    coordinator: WorkerProcess
    coordinator_port: int
    agents: WorkerProcess
    agents_port: int


@pytest.fixture
def workers(tmp_path: Path, env: dict[str, str], orc: Orchestrator) -> Iterator[Workers]:
    coordinator_port, agents_port = free_port(), free_port()
    coordinator = WorkerProcess(
        TEAM,
        "--coordinator",
        env={**env, "AGENTYARD_METRICS_PORT": str(coordinator_port)},
        cwd=ROOT,
        log_path=tmp_path / "coordinator.log",
    )
    agents = WorkerProcess(
        TEAM,
        "--all-agents",
        "--concurrency",
        "4",
        "--metrics-port",
        str(agents_port),
        env=env,
        cwd=ROOT,
        log_path=tmp_path / "agents.log",
    )
    processes = [coordinator.start(), agents.start()]
    try:
        wait_for_workers(orc.celery, len(processes), processes=processes)
        yield Workers(coordinator, coordinator_port, agents, agents_port)
    finally:
        for process in processes:
            process.stop()


def test_a_scrape_of_real_workers_shows_steps_tokens_cost_latency_breakers_queues_and_holds(
    workers: Workers, orc: Orchestrator, stub: StubAnthropicServer, tmp_path: Path
) -> None:
    # Given a provider that overloads the first call, then answers with cache writes and reads
    stub.script(
        [
            {"status": 529, "retry_after_ms": 200},
            {"cache_creation_input_tokens": 300, "cache_read_input_tokens": 900},
        ]
    )

    # When a workflow runs to the end on the worker processes
    result = orc.submit("research", "the telegraph").wait(timeout=120)
    assert result.status is WorkflowStatus.SUCCEEDED

    # Then the agent worker's counters agree with the trace rows, call by call
    seen = _scrape(workers.agents_port, keep=tmp_path / "agents-metrics.txt")
    with session_scope(orc.database_url) as session:
        traces = list(session.exec(select(TraceRow).where(TraceRow.workflow_id == result.id)))
    assert Counter((t.agent_id, t.outcome) for t in traces) == {
        ("researcher", "overloaded"): 1,
        ("researcher", "succeeded"): 1,
        ("writer", "succeeded"): 1,
        ("reviewer", "succeeded"): 1,
    }
    for (agent, outcome), count in Counter((t.agent_id, t.outcome) for t in traces).items():
        assert _get(seen, "agentyard_steps_total", agent=agent, outcome=outcome) == count
    for agent in AGENTS:
        mine = [t for t in traces if t.agent_id == agent]
        of_model = {"agent": agent, "model": MODEL}
        for kind, tokens in {
            "input": sum(t.input_tokens for t in mine),
            "output": sum(t.output_tokens for t in mine),
            "cache_creation": sum(t.cache_creation_tokens for t in mine),
            "cache_read": sum(t.cache_read_tokens for t in mine),
        }.items():
            assert _get(seen, "agentyard_tokens_total", **of_model, kind=kind) == tokens
        assert _get(seen, "agentyard_cost_usd_total", **of_model) == pytest.approx(
            sum(t.cost_micro for t in mine) / 1e6
        )
        assert _get(seen, "agentyard_step_latency_seconds_count", agent=agent) == len(mine)
    researcher = {"agent": "researcher", "model": MODEL}
    assert _get(seen, "agentyard_tokens_total", **researcher, kind="cache_read") == 900
    assert _get(seen, "agentyard_tokens_total", **researcher, kind="cache_creation") == 300
    assert sum(
        _get(seen, "agentyard_cost_usd_total", agent=a, model=MODEL) or 0 for a in AGENTS
    ) == pytest.approx(result.cost_usd)

    # And the shared state: breakers closed (one failure is under the threshold), no hold left
    for agent in AGENTS:
        assert _get(seen, "agentyard_breaker_state", agent=agent) == 0
    assert _get(seen, "agentyard_reservations_held") == 0
    assert all(
        _get(seen, "agentyard_scrape_error", source=s) == 0
        for s in ("breakers", "queues", "reservations")
    )

    # When the reviewer's breaker opens, a call holds $1.234567, and the agent worker is gone
    # while seven requests at four priorities wait on the reviewer's queue
    breakers, budget = orc.breaker_store(), orc.budget_store()
    assert breakers is not None and budget is not None
    breakers.record("reviewer", "metrics-test", False, threshold=1, window_s=60, reset_s=300)
    cap = Cap("agent:researcher", usd_to_micro(100), "day")
    assert budget.reserve("metrics-test:1", 1_234_567, ttl_s=600, caps=[cap]) is None
    workers.agents.stop()
    for priority in (0, 3, 3, 5, 9, 9, 9):
        orc.celery.send_task(
            "agent.reviewer",
            args=[{}],
            queue="agent.reviewer",
            priority=broker_for(orc.settings.effective_broker_url).wire_priority(priority),
        )

    # Then any worker's scrape shows them: here the coordinator's
    seen = _scrape(workers.coordinator_port, keep=tmp_path / "coordinator-metrics.txt")
    assert _get(seen, "agentyard_breaker_state", agent="reviewer") == 2
    assert _get(seen, "agentyard_breaker_state", agent="writer") == 0
    assert _get(seen, "agentyard_queue_depth", queue="agent.reviewer") == 7
    assert _get(seen, "agentyard_queue_depth", queue="agent.researcher") == 0
    assert _get(seen, "agentyard_queue_depth", queue="agent.writer") == 0
    assert _get(seen, "agentyard_reservations_held") == 1
    assert _get(seen, "agentyard_reservations_held_usd") == pytest.approx(1.234567)
    # The coordinator ran no step: its own counters are empty
    assert not any(name == "agentyard_steps_total" for name, _ in seen)
