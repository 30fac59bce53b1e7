"""The real anthropic SDK, over real HTTP to agentyard's stub server, inside a real workflow."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from celery.contrib.testing.worker import start_worker
from sqlmodel import select

from orchestration import Agent, Orchestrator, Settings, Workflow, WorkflowStatus
from orchestration.pricing import PriceTable
from storage.db import session_scope
from storage.models import TraceRow
from workers.providers.base import Usage
from workers.stub_anthropic import StubAnthropicServer

pytestmark = pytest.mark.integration

MODEL = "claude-haiku-4-5"


@pytest.fixture
def stub() -> Iterator[StubAnthropicServer]:
    with StubAnthropicServer() as server:
        yield server


@pytest.fixture
def orc(server_settings: Settings, stub: StubAnthropicServer) -> Iterator[Orchestrator]:
    settings = server_settings.model_copy(
        update={"anthropic_base_url": stub.base_url, "anthropic_api_key": None}
    )
    orc = Orchestrator("sdk", settings)
    orc.register_agent(
        Agent(
            id="analyst",
            model=MODEL,
            system_prompt="You are an analyst.",
            max_retries=2,
            timeout_s=10,
        )
    )
    orc.register_workflow(Workflow.sequence("analyse", ["analyst"]))
    with start_worker(
        orc.celery,
        pool="threads",
        concurrency=2,
        perform_ping_check=False,
        queues=["coordinator", "agent.analyst"],
        shutdown_timeout=10,
    ):
        yield orc
    orc.close()


def test_a_step_on_a_claude_model_goes_through_the_sdk_and_records_full_usage(
    orc: Orchestrator, stub: StubAnthropicServer
) -> None:
    stub.script(
        [
            {
                "status": 200,
                "input_tokens": 120,
                "output_tokens": 40,
                "cache_creation_input_tokens": 300,
                "cache_creation_1h_input_tokens": 100,
                "cache_read_input_tokens": 900,
            }
        ]
    )

    result = orc.submit("analyse", "the telegraph").wait(timeout=60)

    assert result.status is WorkflowStatus.SUCCEEDED
    step = result.steps[0]
    assert (
        step.tokens.input,
        step.tokens.output,
        step.tokens.cache_creation,
        step.tokens.cache_read,
        step.tokens.cache_creation_1h,
    ) == (120, 40, 300, 900, 100)
    expected = PriceTable.default().cost_micro(MODEL, Usage(120, 40, 300, 900, 100))
    assert step.cost_usd == pytest.approx(expected / 1e6)
    assert result.cost_usd == pytest.approx(expected / 1e6)
    assert stub.stats()["calls"] == 1


def test_an_overloaded_provider_is_retried_by_agentyard_not_by_the_sdk(
    orc: Orchestrator, stub: StubAnthropicServer
) -> None:
    stub.script([{"status": 529}, {"status": 429, "retry_after": 0.1}])
    run = orc.submit("analyse", "the telegraph")

    # The retries wait for the sweep (beat), which this test plays by hand.
    deadline = time.monotonic() + 60
    while not run.result().finished and time.monotonic() < deadline:
        orc.maintenance().sweep()
        time.sleep(0.3)
    result = run.result()

    assert result.status is WorkflowStatus.SUCCEEDED
    assert result.steps[0].attempt == 3
    assert stub.stats()["calls"] == 3  # one HTTP call per attempt: the SDK itself never retried
    with session_scope(orc.database_url) as session:
        outcomes = [
            t.outcome
            for t in session.exec(
                select(TraceRow).where(TraceRow.workflow_id == run.id).order_by(TraceRow.attempt)
            ).all()
        ]
    assert outcomes == ["overloaded", "rate_limited", "succeeded"]
