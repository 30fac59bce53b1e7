"""What the step counters say after real workflow runs, driven in-process (fakeredis, SQLite):
each attempt counted once under its outcome, its tokens and cost under its agent and model, and
its model call in the latency histogram."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import fakeredis
import pytest
from pydantic import SecretStr
from sqlalchemy import update
from sqlmodel import col, select

from orchestration import Agent, Orchestrator, Settings, Workflow, WorkflowStatus
from orchestration.maintenance import Maintenance
from orchestration.step.call import Call as _Call
from storage.db import session_scope
from storage.models import StepRow, TraceRow, utcnow
from tests.conftest import TeamFactory
from tests.support import InlineBus, drain, run_inline
from workers.providers.base import ModelRequest
from workers.stub_anthropic import StubAnthropicServer

ECHO = "offline:echo"
TEAM = ("researcher", "writer", "reviewer")


def _team(inline_team: TeamFactory, **models: str) -> tuple[Orchestrator, InlineBus]:
    agents = [
        Agent(id=a, model=models.get(a, ECHO), system_prompt=f"You are the {a}.", max_retries=2)
        for a in TEAM
    ]
    return inline_team(*agents, workflows=(Workflow.sequence("research", list(TEAM)),))


def _value(orc: Orchestrator, name: str, **labels: str) -> float | None:
    return orc.metrics().registry.get_sample_value(name, labels)


def _traces(orc: Orchestrator) -> list[TraceRow]:
    with session_scope(orc.database_url) as session:
        return list(session.exec(select(TraceRow).order_by(col(TraceRow.started_at))).all())


def _make_retries_due(orc: Orchestrator) -> None:
    """Bring every retry's due time to now, so that the sweep dispatches it without a wait."""
    with session_scope(orc.database_url) as session:
        session.exec(
            update(StepRow)
            .where(col(StepRow.due_at).is_not(None))
            .values(due_at=utcnow() - timedelta(seconds=1))
        )


def test_a_workflow_that_succeeds_counts_one_succeeded_step_per_agent_with_its_tokens_and_cost(
    inline_team: TeamFactory,
) -> None:
    orc, bus = _team(inline_team)

    result = run_inline(orc, bus, "research", "the telegraph")

    assert result.status is WorkflowStatus.SUCCEEDED
    for trace in _traces(orc):
        agent = {"agent": trace.agent_id}
        of_model = {**agent, "model": ECHO}
        assert _value(orc, "agentyard_steps_total", **agent, outcome="succeeded") == 1
        assert _value(orc, "agentyard_tokens_total", **of_model, kind="input") == (
            trace.input_tokens
        )
        assert _value(orc, "agentyard_tokens_total", **of_model, kind="output") == (
            trace.output_tokens
        )
        assert _value(orc, "agentyard_tokens_total", **of_model, kind="cache_read") == 0
        assert _value(orc, "agentyard_cost_usd_total", **of_model) == pytest.approx(
            trace.cost_micro / 1e6
        )
        assert _value(orc, "agentyard_step_latency_seconds_count", **agent) == 1
        assert _value(orc, "agentyard_step_latency_seconds_sum", **agent) == pytest.approx(
            trace.latency_ms / 1000
        )
    total = sum(_value(orc, "agentyard_cost_usd_total", agent=a, model=ECHO) or 0 for a in TEAM)
    assert total == pytest.approx(result.cost_usd)


def test_a_retried_step_counts_its_failed_attempt_under_its_outcome_and_the_retry_as_succeeded(
    inline_team: TeamFactory,
) -> None:
    writer = "offline:echo?fail=overloaded&fail_first=1"
    orc, bus = _team(inline_team, writer=writer)
    run = orc.submit("research", "the telegraph")
    drain(orc, bus)  # the writer is overloaded: its retry waits for its due time

    _make_retries_due(orc)
    Maintenance(orc.bus, orc.settings).sweep()
    drain(orc, bus)

    assert run.result().status is WorkflowStatus.SUCCEEDED
    assert _value(orc, "agentyard_steps_total", agent="writer", outcome="overloaded") == 1
    assert _value(orc, "agentyard_steps_total", agent="writer", outcome="succeeded") == 1
    assert _value(orc, "agentyard_steps_total", agent="reviewer", outcome="succeeded") == 1
    # Both calls were made: both are in the histogram, and only the answer has tokens.
    assert _value(orc, "agentyard_step_latency_seconds_count", agent="writer") == 2
    (answer,) = [t for t in _traces(orc) if t.agent_id == "writer" and t.outcome == "succeeded"]
    assert _value(orc, "agentyard_tokens_total", agent="writer", model=writer, kind="output") == (
        answer.output_tokens
    )


def test_a_call_a_spend_cap_refused_is_counted_but_has_no_latency_tokens_or_cost(
    inline_team: TeamFactory,
) -> None:
    orc, bus = inline_team(
        Agent(id="thrifty", model=ECHO, cost_limit_usd=0.001),
        workflows=(Workflow.sequence("w", ["thrifty"]),),
    )

    result = run_inline(orc, bus, "w", "the telegraph")

    assert result.status is WorkflowStatus.BUDGET_EXCEEDED
    labels = {"agent": "thrifty"}
    assert _value(orc, "agentyard_steps_total", **labels, outcome="cost_limit_exceeded") == 1
    assert _value(orc, "agentyard_steps_total", **labels, outcome="succeeded") is None
    assert _value(orc, "agentyard_step_latency_seconds_count", **labels) is None
    assert _value(orc, "agentyard_tokens_total", **labels, model=ECHO, kind="input") == 0
    assert _value(orc, "agentyard_cost_usd_total", **labels, model=ECHO) == 0


def test_calls_the_open_breaker_refused_are_counted_as_breaker_open_and_the_gauge_shows_it_open(
    inline_team: TeamFactory,
) -> None:
    orc, bus = inline_team(
        Agent(id="backup", model=ECHO),  # registered before the agent naming it
        Agent(
            id="primary",
            model="offline:echo?fail=overloaded",
            max_retries=0,
            fallback="backup",
            breaker_threshold=2,
        ),
        workflows=(Workflow.sequence("w", ["primary"]),),
    )

    for n in range(3):
        run_inline(orc, bus, "w", f"topic {n}")

    assert _value(orc, "agentyard_steps_total", agent="primary", outcome="overloaded") == 2
    assert _value(orc, "agentyard_steps_total", agent="primary", outcome="breaker_open") == 1
    assert _value(orc, "agentyard_steps_total", agent="backup", outcome="succeeded") == 3
    assert _value(orc, "agentyard_step_latency_seconds_count", agent="primary") == 2
    assert _value(orc, "agentyard_breaker_state", agent="primary") == 2
    assert _value(orc, "agentyard_breaker_state", agent="backup") == 0


def test_an_attempt_whose_result_was_fenced_off_is_counted_all_the_same(
    inline_team: TeamFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    orc, bus = _team(inline_team)
    run = orc.submit("research", "the telegraph")
    _, late = bus.queue.popleft()
    runner = orc.step_runner()
    call = runner._call

    def slow_call(agent: Agent, request: ModelRequest) -> _Call:
        outcome = call(agent, request)
        # While the model answered, the lease ran out and the sweep gave the attempt up.
        with session_scope(orc.database_url) as session:
            session.exec(
                update(StepRow)
                .where(col(StepRow.position) == 0)
                .values(lease_until=utcnow() - timedelta(seconds=1))
            )
        Maintenance(orc.bus, orc.settings).sweep()
        return outcome

    monkeypatch.setattr(runner, "_call", slow_call)
    runner.run(late)
    monkeypatch.undo()
    drain(orc, bus)

    assert run.result().status is WorkflowStatus.SUCCEEDED
    # The late call was made and paid for: two calls of the researcher, both counted.
    assert _value(orc, "agentyard_steps_total", agent="researcher", outcome="succeeded") == 2
    assert _value(orc, "agentyard_step_latency_seconds_count", agent="researcher") == 2
    paid = sum(t.cost_micro for t in _traces(orc) if t.agent_id == "researcher")
    assert _value(orc, "agentyard_cost_usd_total", agent="researcher", model=ECHO) == (
        pytest.approx(paid / 1e6)
    )


@pytest.fixture
def stub() -> Iterator[StubAnthropicServer]:
    with StubAnthropicServer() as server:
        yield server


def test_cache_writes_and_reads_are_counted_apart_from_input_tokens(
    unit_settings: Settings, stub: StubAnthropicServer
) -> None:
    settings = unit_settings.model_copy(
        update={"anthropic_base_url": stub.base_url, "anthropic_api_key": SecretStr("sk-stub")}
    )
    bus = InlineBus(settings.effective_database_url)
    orc = Orchestrator("unit", settings, bus=bus, redis=fakeredis.FakeRedis())
    orc.register_agent(Agent(id="cached", model="claude-haiku-4-5"))
    orc.register_workflow(Workflow.sequence("w", ["cached"]))
    stub.script(
        [{"input_tokens": 12, "cache_creation_input_tokens": 300, "cache_read_input_tokens": 900}]
    )

    try:
        result = run_inline(orc, bus, "w", "the telegraph")
    finally:
        orc.close()

    assert result.status is WorkflowStatus.SUCCEEDED
    labels = {"agent": "cached", "model": "claude-haiku-4-5"}
    assert _value(orc, "agentyard_tokens_total", **labels, kind="input") == 12
    assert _value(orc, "agentyard_tokens_total", **labels, kind="cache_creation") == 300
    assert _value(orc, "agentyard_tokens_total", **labels, kind="cache_read") == 900
    assert _value(orc, "agentyard_cost_usd_total", **labels) == pytest.approx(result.cost_usd)
