"""A response that arrived is used: an answer the worker read after the agent's deadline is the
step's result, on record as late, and never counted against the provider by its breaker. A
provider that really does not answer in time still is. Real SDK against the stub server, SQLite,
fakeredis."""

from __future__ import annotations

from collections.abc import Iterator

import fakeredis
import pytest
from rich.console import Console
from sqlmodel import col, select

from orchestration import Agent, Orchestrator, Settings, Workflow, WorkflowStatus
from orchestration.trace_report import trace_tree
from storage.db import session_scope
from storage.models import TraceRow
from tests.support import InlineBus, reads_late, run_inline
from workers.stub_anthropic import StubAnthropicServer


@pytest.fixture
def team(stub_settings: Settings) -> Iterator[tuple[Orchestrator, InlineBus]]:
    settings = stub_settings
    bus = InlineBus(settings.effective_database_url)
    orc = Orchestrator("late", settings, bus=bus, redis=fakeredis.FakeRedis())
    orc.register_agent(
        Agent(
            id="answerer",
            model="claude-haiku-4-5",
            timeout_s=0.5,
            max_retries=0,
            breaker_threshold=1,
        )
    )
    orc.register_workflow(Workflow.sequence("ask", ["answerer"]))
    yield orc, bus
    orc.close()


def _calls(orc: Orchestrator) -> list[tuple[str, bool, float, float | None]]:
    with session_scope(orc.database_url) as session:
        rows = session.exec(
            select(TraceRow.outcome, TraceRow.late, TraceRow.latency_ms, TraceRow.wire_ms).order_by(
                col(TraceRow.started_at)
            )
        ).all()
    return [(o, bool(late), float(ms), wire) for o, late, ms, wire in rows]


def test_an_answer_read_after_the_deadline_is_used_on_record_as_late_and_the_breaker_stays_closed(
    team: tuple[Orchestrator, InlineBus],
    stub: StubAnthropicServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a provider answering in 0.1 s, a worker that reads each answer a second late, and an
    # agent whose deadline is 0.5 s and whose breaker opens on the first provider failure
    orc, bus = team
    stub.state.latency_s = 0.1
    reads_late(monkeypatch, delay_s=1.0)

    # When three runs go through it
    results = [run_inline(orc, bus, "ask", f"question {n}") for n in range(3)]

    # Then every answer the provider sent is the result of its step
    assert [r.status for r in results] == [WorkflowStatus.SUCCEEDED] * 3
    assert stub.stats()["by_status"] == {"200": 3}
    calls = _calls(orc)
    assert [(outcome, late) for outcome, late, _, _ in calls] == [("succeeded", True)] * 3
    # ... the worker's latency is over the deadline; the provider's part is what it took
    assert all(ms > 1000 for _, _, ms, _ in calls)
    assert all(wire is not None and wire < ms for _, _, ms, wire in calls)
    # ... and the provider was never blamed for the worker's own slowness
    breakers = orc.breaker_store()
    assert breakers is not None and breakers.state("answerer").state == "closed"
    # ... and the run's trace says so
    call = orc.runs.trace(results[0].id).steps[0].calls[0]
    assert call.late and call.wire_ms is not None and call.wire_ms < call.latency_ms
    tree = trace_tree(orc.runs.trace(results[0].id), show_io=False)
    console = Console(width=300, record=True, color_system=None)
    console.print(tree)
    shown = console.export_text()
    assert "late (wire " in shown and "): answer used" in shown


def test_a_provider_that_answers_after_the_deadline_is_a_timeout_and_opens_the_breaker(
    team: tuple[Orchestrator, InlineBus], stub: StubAnthropicServer
) -> None:
    # Given a provider that takes 1.5 s, over the agent's 0.5 s deadline
    orc, bus = team
    stub.state.latency_s = 1.5

    # When a run goes through it
    result = run_inline(orc, bus, "ask", "a slow question")

    # Then the call timed out, and the breaker counted it against the provider
    assert result.status is WorkflowStatus.FAILED
    assert [(o, late) for o, late, _, _ in _calls(orc)] == [("timeout", False)]
    breakers = orc.breaker_store()
    assert breakers is not None and breakers.state("answerer").state == "open"
