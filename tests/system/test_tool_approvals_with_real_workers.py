"""Tool calls that wait for a person's approval, on real worker processes, every model turn
through the real SDK to the stub server:

- a tool declared ``needs_approval=True``: the run waits (``waiting_approval``, no worker holds
  it) through a SIGKILL of every worker; approved from the shell, the call runs once, with the
  model's first answer read back rather than asked for again;
- rejected: the tool never runs, the model reads an ``is_error`` result with who and why, and
  the run goes on;
- nobody deciding within the workflow's ``tool_approval_timeout_s``: the sweep applies its
  ``tool_approval_on_timeout`` (reject);
- ``approve_untrusted_side_effects=True``: a tool without side effects runs at once, one with
  side effects called after it waits.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlmodel import col, select

from orchestration import Orchestrator, WorkflowStatus
from storage.db import session_scope
from storage.models import ApprovalRow, TraceRow, as_utc
from tests.system.conftest import (
    COORDINATOR_AND_AGENTS,
    Fleet,
    agentyard,
    started_workers,
    until,
)
from tests.system.tool_support import TEAM, lines, tool_team, tool_team_env, uses
from workers.processes import wait_for_workers
from workers.stub_anthropic import StubAnthropicServer

pytestmark = [pytest.mark.integration, pytest.mark.system, pytest.mark.timeout(300)]

WAIT_S = 60.0


@pytest.fixture
def outbox(tmp_path: Path) -> Path:
    return tmp_path / "outbox.txt"


@pytest.fixture
def extra_env(stub: StubAnthropicServer, outbox: Path) -> dict[str, str]:
    return tool_team_env(
        stub, outbox, AGENTYARD_SWEEP_INTERVAL_S="0.5", TOOL_TEAM_NAME="tool-approvals"
    )


@pytest.fixture
def orc(env: dict[str, str]) -> Orchestrator:
    return tool_team()


@pytest.fixture
def workers(orc: Orchestrator, env: dict[str, str], tmp_path: Path) -> Iterator[None]:
    with started_workers(orc, env, tmp_path, *COORDINATOR_AND_AGENTS, team=TEAM):
        yield


PAYMENT = {"to": "Acme", "amount": 120.0}


def test_a_call_that_needs_approval_waits_through_kills_and_runs_once_approved_from_the_shell(
    orc: Orchestrator,
    env: dict[str, str],
    tmp_path: Path,
    stub: StubAnthropicServer,
    outbox: Path,
) -> None:
    stub.script([uses(("pay", PAYMENT)), {"text": "Acme paid."}, {"text": "Reviewed."}])
    fleet = Fleet(env, tmp_path, team=TEAM)
    fleet.start("coordinator", "--coordinator", "--concurrency", "2")
    fleet.start("agents", "--all-agents", "--concurrency", "2")
    try:
        wait_for_workers(orc.celery, 2, processes=list(fleet.workers.values()))
        run = orc.submit("payout", "pay Acme's invoice of 120")

        until(lambda: orc.approvals.pending(run.id), "the payment waiting for approval")
        [waiting] = orc.approvals.pending(run.id)
        assert (waiting.kind, waiting.gate, waiting.subject) == (
            "tool",
            "pay",
            '{"amount":120.0,"to":"Acme"}',
        )
        assert run.result().status is WorkflowStatus.WAITING_APPROVAL
        assert lines(outbox, "pay ") == []  # not run
        listed = agentyard(env, "approvals")
        assert listed.returncode == 0, listed.stderr
        assert run.id in listed.stdout and "pay" in listed.stdout

        # Every worker dies and starts again: the wait is a row, not a task
        fleet.kill("coordinator")
        fleet.kill("agents")
        fleet.start("coordinator", "--coordinator", "--concurrency", "2")
        fleet.start("agents", "--all-agents", "--concurrency", "2")
        wait_for_workers(orc.celery, 2, processes=list(fleet.workers.values()))
        assert orc.approvals.pending(run.id) == [waiting]

        approved = agentyard(
            env, "approve", run.id, "pay", "--by", "alice", "--hash", waiting.subject_hash[:12]
        )
        assert approved.returncode == 0, approved.stderr
        assert approved.stdout.startswith(f"approved tool call pay of run {run.id} as alice")

        result = run.wait(timeout=WAIT_S)
        assert result.status is WorkflowStatus.SUCCEEDED, result.error
        payer = result.steps[0]
        assert payer.output == "Acme paid."
        assert [(c.tool, c.arguments, c.is_error, c.runs) for c in payer.tool_calls] == [
            ("pay", PAYMENT, False, 1)
        ]
        assert len(lines(outbox, "pay ")) == 1
        with session_scope(orc.database_url) as session:
            row = session.exec(select(ApprovalRow).where(ApprovalRow.workflow_id == run.id)).one()
            traces = session.exec(
                select(TraceRow).where(TraceRow.step_id == payer.id).order_by(col(TraceRow.attempt))
            ).all()
        assert (row.kind, row.status, row.decided_by) == ("tool", "approved", "alice")
        # the first answer was asked for once; the next turn only after the approval
        asked = stub.stats()["by_request"]
        assert sorted(key for key in asked if key.startswith(payer.id)) == [
            f"{payer.id}:1",
            f"{payer.id}:2:1",
        ]
        decided_at = as_utc(row.decided_at)
        assert decided_at is not None
        answered = [t for t in traces if t.outcome == "succeeded"]
        assert [as_utc(t.started_at) >= decided_at for t in answered] == [True]
        traced = agentyard(env, "trace", run.id)
        assert traced.returncode == 0, traced.stderr
        assert "approval pay  approved  by alice" in traced.stdout
        assert "payer  succeeded" in traced.stdout.splitlines()[1]
        assert "0 retries" in traced.stdout.splitlines()[1]  # waiting for a person is not one
    finally:
        fleet.stop()


def test_a_rejected_call_never_runs_and_the_model_reads_who_rejected_it_and_why(
    workers: None, orc: Orchestrator, stub: StubAnthropicServer, outbox: Path
) -> None:
    stub.script(
        [uses(("pay", PAYMENT)), {"text": "The payment was refused."}, {"text": "Reviewed."}]
    )
    run = orc.submit("payout", "pay Acme's invoice of 120")
    until(lambda: orc.approvals.pending(run.id), "the payment waiting for approval")

    orc.reject(run.id, "pay", by="bob", note="Acme was paid last week")

    result = run.wait(timeout=WAIT_S)
    assert result.status is WorkflowStatus.SUCCEEDED, result.error
    [call] = result.steps[0].tool_calls
    assert (call.tool, call.is_error) == ("pay", True)
    assert "bob rejected this call: Acme was paid last week" in (call.result or "")
    assert lines(outbox, "pay ") == []
    assert result.steps[0].output == "The payment was refused."


def test_a_call_nobody_decides_in_time_is_refused_by_the_sweep(
    workers: None, orc: Orchestrator, stub: StubAnthropicServer, outbox: Path
) -> None:
    stub.script([uses(("pay", PAYMENT)), {"text": "Nobody approved it."}])

    run = orc.submit("hasty_payout", "pay Acme's invoice of 120")  # 2 s to decide, then reject
    result = run.wait(timeout=WAIT_S)

    assert result.status is WorkflowStatus.SUCCEEDED, result.error
    [call] = result.steps[0].tool_calls
    assert call.is_error and "nobody approved this call in time" in (call.result or "")
    assert lines(outbox, "pay ") == []
    with session_scope(orc.database_url) as session:
        row = session.exec(select(ApprovalRow).where(ApprovalRow.workflow_id == run.id)).one()
    assert (row.status, row.decided_by, row.on_timeout) == ("timed_out", None, "reject")


def test_untrusted_side_effects_wait_for_approval_when_the_workflow_says_so(
    workers: None, orc: Orchestrator, stub: StubAnthropicServer, outbox: Path
) -> None:
    email: dict[str, object] = {"to": "ada@example.com", "body": "Your order 7 is on its way"}
    stub.script(
        [
            uses(("look_up", {"order": 7})),  # no side effects: runs at once
            uses(("send_email", email)),  # side effects, after reading a tool's result
            {"text": "Ada told."},
        ]
    )
    run = orc.submit("guarded", "tell the customer of order 7")

    until(lambda: orc.approvals.pending(run.id), "the email waiting for approval")
    [waiting] = orc.approvals.pending(run.id)
    assert (waiting.gate, waiting.kind) == ("send_email", "tool")
    assert lines(outbox, "email ") == []
    orc.approve(run.id, "send_email", by="carol", subject_hash=waiting.subject_hash)

    result = run.wait(timeout=WAIT_S)
    assert result.status is WorkflowStatus.SUCCEEDED, result.error
    assert [(c.tool, c.is_error, c.runs) for c in result.steps[0].tool_calls] == [
        ("look_up", False, 1),
        ("send_email", False, 1),
    ]
    assert len(lines(outbox, "email ")) == 1
