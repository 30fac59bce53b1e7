"""Circuit breakers in a workflow's life (fakeredis, SQLite)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import col, select

from orchestration import Agent, Workflow, WorkflowStatus, cli
from storage.db import session_scope
from storage.models import TraceRow
from tests.conftest import TeamFactory
from tests.support import run_inline
from tests.unit.test_sequence_decisions import NOW, _graph, _run, _steps, decide


def test_a_failing_provider_opens_the_breaker_and_then_the_fallback_runs_without_calling_it(
    inline_team: TeamFactory,
) -> None:
    orc, bus = inline_team(
        Agent(id="backup", model="offline:echo"),  # registered before the agent naming it
        Agent(
            id="primary",
            model="offline:echo?fail=overloaded",
            max_retries=0,
            fallback="backup",
            breaker_threshold=2,
        ),
        workflows=(Workflow.sequence("w", ["primary"]),),
    )
    results = [run_inline(orc, bus, "w", f"topic {n}") for n in range(3)]

    assert [r.status for r in results] == [WorkflowStatus.SUCCEEDED] * 3
    assert all(r.steps[0].agent == "backup" for r in results)  # the result says who produced it
    with session_scope(orc.database_url) as session:
        outcomes = session.exec(
            select(TraceRow.outcome)
            .where(TraceRow.agent_id == "primary")
            .order_by(col(TraceRow.started_at))
        ).all()
    assert outcomes == ["overloaded", "overloaded", "breaker_open"]  # the third: no call made
    breakers = orc.breaker_store()
    assert breakers is not None and breakers.state("primary").state == "open"


def test_without_a_fallback_a_step_waits_for_the_breaker_and_the_wait_uses_no_retry() -> None:
    run, steps = _run(), _steps("b")
    run.status = "running"
    step = steps[0]
    step.status, step.attempt, step.agent_attempt, step.ran_by = "attempt_failed", 3, 1, "b"
    step.error_kind, step.error_retryable, step.retry_after_s = "breaker_open", True, 12.0

    decide(run, _graph("b"), steps, step)

    assert step.status == "pending" and step.ran_by == "b"
    assert step.due_at == NOW + timedelta(seconds=12)
    assert step.agent_attempt == 0  # b has max_retries=0: the wait did not spend a retry


def test_the_breakers_command_shows_each_agents_state(
    inline_team: TeamFactory, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    orc, bus = inline_team(
        Agent(id="flaky", model="offline:echo?fail=overloaded", max_retries=0, breaker_threshold=1),
        Agent(id="steady", model="offline:echo"),
        workflows=(Workflow.sequence("w", ["flaky"]),),
    )
    run_inline(orc, bus, "w", "the telegraph")
    monkeypatch.setattr("orchestration.loader.load_orchestrator", lambda _spec: orc)

    assert cli.main(["breakers", "unit:orc"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split()[:2] == ["flaky", "open"] and "opened 1 time(s)" in lines[1]
    assert lines[2].split()[:2] == ["steady", "closed"]
