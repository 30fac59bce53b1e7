"""A provider that rate-limits, overloads and hangs, on the stub server, with real worker processes:
each failed attempt is on record, the next one waits at least what the server asked for without
holding a worker thread, a hung call is cut off at the agent's timeout, and every run finishes."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from sqlmodel import col, select

from orchestration import Orchestrator, WorkflowStatus
from storage.db import session_scope
from storage.models import TraceRow
from tests.system.conftest import started_workers, stub_env
from workers.stub_anthropic import StubAnthropicServer

pytestmark = [pytest.mark.integration, pytest.mark.system]

TIMEOUT_S = 1.0  # each agent's


@pytest.fixture
def extra_env(stub: StubAnthropicServer) -> dict[str, str]:
    return {
        **stub_env(stub),
        "SAMPLE_TEAM_TIMEOUT_S": str(TIMEOUT_S),
        "AGENTYARD_SWEEP_INTERVAL_S": "0.5",
    }


@pytest.fixture
def workers(tmp_path: Path, env: dict[str, str], orc: Orchestrator) -> Iterator[None]:
    """A coordinator with beat, and one agent worker with a single thread."""
    with started_workers(
        orc, env, tmp_path, ("--coordinator", "--beat"), ("--all-agents", "--concurrency", "1")
    ):
        yield


def _traces(orc: Orchestrator, run_id: str) -> list[TraceRow]:
    with session_scope(orc.database_url) as session:
        return list(
            session.exec(
                select(TraceRow)
                .where(TraceRow.workflow_id == run_id)
                .order_by(col(TraceRow.started_at))
            ).all()
        )


def _seconds(later: datetime, earlier: datetime) -> float:
    return (later - earlier).total_seconds()


def test_rate_limits_and_overload_are_retried_no_sooner_than_the_server_asked(
    workers: None, orc: Orchestrator, stub: StubAnthropicServer
) -> None:
    # Given a provider that answers a run's first call 429, retry-after 6 s
    stub.script([{"status": 429, "retry_after": 6}])
    slow = orc.submit("research", "the telegraph")
    deadline = time.monotonic() + 30
    while not _traces(orc, slow.id) and time.monotonic() < deadline:
        time.sleep(0.05)

    # When another run comes in while the first one waits out its retry-after
    quick = orc.submit("research", "the semaphore line").wait(timeout=60)

    # Then it finishes meanwhile: the waiting retry holds no thread of the only agent worker
    assert quick.status is WorkflowStatus.SUCCEEDED
    assert [t.outcome for t in _traces(orc, slow.id)] == ["rate_limited"]

    # And when the retry meets an overloaded provider (retry-after-ms 1500), the run still
    # finishes, each attempt no sooner than the server asked
    stub.script([{"status": 529, "retry_after_ms": 1500}])
    result = slow.wait(timeout=60)
    assert result.status is WorkflowStatus.SUCCEEDED
    traces = _traces(orc, slow.id)
    assert [(t.attempt, t.outcome) for t in traces[:3]] == [
        (1, "rate_limited"),
        (2, "overloaded"),
        (3, "succeeded"),
    ]
    assert _seconds(traces[1].started_at, traces[0].finished_at) >= 6.0
    assert _seconds(traces[2].started_at, traces[1].finished_at) >= 1.5
    first_step = result.steps[0].id
    assert {k: v for k, v in stub.stats()["by_request"].items() if k.startswith(first_step)} == {
        f"{first_step}:1": [429],
        f"{first_step}:2": [529],
        f"{first_step}:3": [200],
    }


def test_a_hung_call_is_cut_off_at_the_agents_timeout_and_tried_again(
    workers: None, orc: Orchestrator, stub: StubAnthropicServer
) -> None:
    # Given a provider whose first answer would take ten times the agent's timeout
    stub.script([{"delay_s": TIMEOUT_S * 10}])

    # When a run starts
    result = orc.submit("research", "the heliograph").wait(timeout=60)

    # Then the hung attempt is on record as timed out, and the retry finished the step
    assert result.status is WorkflowStatus.SUCCEEDED
    traces = _traces(orc, result.id)
    hung = traces[0]
    assert (hung.attempt, hung.outcome) == (1, "timeout")
    assert TIMEOUT_S * 1000 <= hung.latency_ms < TIMEOUT_S * 10 * 1000
    assert hung.cost_micro == 0 and hung.output is None  # no answer came, so no usage to bill
    assert [(t.attempt, t.outcome) for t in traces[1:]] == [
        (2, "succeeded"),
        (1, "succeeded"),
        (1, "succeeded"),
    ]
    assert result.steps[0].attempt == 2
