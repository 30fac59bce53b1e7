"""The real anthropic SDK, over real HTTP to agentyard's stub server, inside a real workflow; and
the audit record of every call it made, read back from PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from celery.contrib.testing.worker import start_worker
from sqlalchemy import create_engine
from sqlmodel import Session, select

from orchestration import Agent, Orchestrator, Settings, Workflow, WorkflowStatus
from orchestration.guards.spotlight import SYSTEM_NOTE, unmark_prompt
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
    orc.register_agent(Agent(id="editor", model=MODEL, system_prompt="You edit.", timeout_s=10))
    orc.register_workflow(Workflow.sequence("analyse", ["analyst"]))
    orc.register_workflow(Workflow.sequence("analyse-and-edit", ["analyst", "editor"]))
    with start_worker(
        orc.celery,
        pool="threads",
        concurrency=2,
        perform_ping_check=False,
        queues=["coordinator", "agent.analyst", "agent.editor"],
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


def test_every_call_is_on_record_with_its_input_output_reasoning_usage_and_parent_step(
    orc: Orchestrator, stub: StubAnthropicServer, postgres_url: str
) -> None:
    stub.script(
        [
            {"status": 429, "retry_after": 0.05},
            {
                "status": 200,
                "text": "The telegraph shrank the world.",
                "thinking": "Speed of news is the crux; cite Morse.",
                "input_tokens": 120,
                "output_tokens": 40,
                "cache_creation_input_tokens": 300,
                "cache_read_input_tokens": 900,
            },
            {"status": 200, "text": "Edited: the telegraph shrank the world."},
        ]
    )
    run = orc.submit("analyse-and-edit", "the telegraph")
    # The retry waits for the sweep (beat), which this test plays by hand.
    deadline = time.monotonic() + 60
    while not run.result().finished and time.monotonic() < deadline:
        orc.maintenance().sweep()
        time.sleep(0.2)
    result = run.result()
    assert result.status is WorkflowStatus.SUCCEEDED
    orc.close()

    # Read back through a connection of its own, as an auditor would, later.
    engine = create_engine(postgres_url)
    with Session(engine) as session:
        query = select(TraceRow).where(TraceRow.workflow_id == result.id)
        limited, answered, edited = session.exec(query.order_by(TraceRow.started_at)).all()
    engine.dispose()
    analyst, editor = result.steps

    assert (limited.agent_id, limited.attempt, limited.outcome) == ("analyst", 1, "rate_limited")
    assert limited.cost_micro == 0 and limited.output is None and limited.error
    assert (answered.agent_id, answered.attempt, answered.outcome) == ("analyst", 2, "succeeded")
    assert answered.step_id == limited.step_id == analyst.id
    assert answered.model == MODEL
    assert answered.system_prompt == f"You are an analyst.\n\n{SYSTEM_NOTE}"
    assert "theˆtelegraph" in answered.prompt  # the request, marked as data
    assert unmark_prompt(answered.prompt) == "the telegraph"
    assert answered.output == "The telegraph shrank the world."
    assert answered.reasoning == "Speed of news is the crux; cite Morse."
    assert (
        answered.input_tokens,
        answered.output_tokens,
        answered.cache_creation_tokens,
        answered.cache_read_tokens,
    ) == (120, 40, 300, 900)
    assert answered.cost_micro > 0
    assert answered.latency_ms > 0
    assert answered.finished_at >= answered.started_at
    assert answered.parent_step_id is None  # the first step follows nothing

    assert (edited.agent_id, edited.step_id, edited.attempt) == ("editor", editor.id, 1)
    assert edited.parent_step_id == analyst.id
    assert "The telegraph shrank the world." in unmark_prompt(
        edited.prompt
    )  # its input is the analyst's output
    assert edited.output == "Edited: the telegraph shrank the world."
    assert edited.reasoning is None

    # Tracing is off here (no endpoint): the rows name their run's trace, and no span.
    for row in (limited, answered, edited):
        assert (row.trace_id, row.span_id) == (result.id.replace("-", ""), None)
