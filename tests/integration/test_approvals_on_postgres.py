"""Approval gates on a real PostgreSQL and Redis, through a real Celery worker in this process:
a run waits at its gate holding nothing, a person's approval lets it go on (the next agent called
only after it), a rejection ends it rejected; a decision naming another hash, a second decision,
an approval of an output that changed since, are refused with nothing written; the sweep applies
a gate's on_timeout; a decision made with no team at hand is carried on by the coordinators."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import datetime

import pytest
from celery.contrib.testing.worker import start_worker
from sqlalchemy import update
from sqlmodel import col, select

from orchestration import (
    Agent,
    ApprovalRefused,
    Orchestrator,
    PendingApproval,
    RunNotFound,
    Settings,
    Workflow,
    WorkflowStatus,
    approval,
)
from orchestration.approvals import Approvals
from orchestration.guards.spotlight import unmark_prompt as plain
from orchestration.maintenance import Maintenance
from orchestration.workflow.gates import GATE, subject_hash
from storage.db import session_scope
from storage.models import ApprovalRow, MessageRow, StepRow, as_utc, utcnow

pytestmark = pytest.mark.integration

WAIT_S = 60.0


@pytest.fixture
def orc(server_settings: Settings) -> Iterator[Orchestrator]:
    orc = Orchestrator("approvals", server_settings)
    for agent_id in ("writer", "publisher"):
        orc.register_agent(Agent(id=agent_id, model="offline:echo", system_prompt=agent_id))
    orc.register_workflow(Workflow("publish", ["writer", approval("publish"), "publisher"]))
    orc.register_workflow(
        Workflow("twice", ["writer", approval("publish"), approval("ship"), "publisher"])
    )
    for on_timeout in ("reject", "approve", "fail"):
        orc.register_workflow(
            Workflow(
                f"quick-{on_timeout}",
                ["writer", approval("publish", timeout_s=1, on_timeout=on_timeout)],  # type: ignore[arg-type]
            )
        )
    queues = ["coordinator", *(a.queue for a in orc.team.agents.values())]
    with start_worker(
        orc.celery,
        pool="threads",
        concurrency=4,
        perform_ping_check=False,
        queues=queues,
        shutdown_timeout=10,
    ):
        yield orc
    orc.close()


def _until(found: Callable[[], object], what: str) -> object:
    deadline = time.monotonic() + WAIT_S
    while not (value := found()):
        assert time.monotonic() < deadline, f"{what}: not within {WAIT_S}s"
        time.sleep(0.05)
    return value


def _waiting(orc: Orchestrator, run_id: str) -> PendingApproval:
    pending = _until(lambda: orc.approvals.pending(run_id), f"run {run_id} waiting at its gate")
    assert isinstance(pending, list)
    [waiting] = pending
    assert isinstance(waiting, PendingApproval)
    return waiting


def _steps(orc: Orchestrator, run_id: str) -> dict[str, StepRow]:
    with session_scope(orc.database_url) as session:
        rows = session.exec(select(StepRow).where(StepRow.workflow_id == run_id)).all()
    return {row.node or "": row for row in rows}


def _approval(orc: Orchestrator, run_id: str, gate: str = "publish") -> ApprovalRow:
    with session_scope(orc.database_url) as session:
        return session.exec(
            select(ApprovalRow).where(ApprovalRow.workflow_id == run_id, ApprovalRow.gate == gate)
        ).one()


def test_a_run_waits_at_its_gate_and_goes_on_only_once_a_person_approved(
    orc: Orchestrator,
) -> None:
    run = orc.submit("publish", "the telegraph")
    waiting = _waiting(orc, run.id)

    assert (waiting.gate, waiting.scope, waiting.workflow, waiting.kind) == (
        "publish",
        "",
        "publish",
        "gate",
    )
    writer = _steps(orc, run.id)["writer"]
    assert waiting.subject == writer.output
    assert waiting.subject_hash == subject_hash(GATE, "publish", writer.output or "")
    assert run.result().status is WorkflowStatus.WAITING_APPROVAL
    assert "publisher" not in _steps(orc, run.id)

    decided = orc.approve(
        run.id, "publish", by="alice", note="fine", subject_hash=waiting.subject_hash[:12]
    )
    result = run.wait(timeout=WAIT_S)

    assert (decided.status, decided.by, decided.applied) == ("approved", "alice", True)
    assert result.status is WorkflowStatus.SUCCEEDED
    publisher = _steps(orc, run.id)["publisher"]
    assert publisher.dispatched_at is not None
    assert as_utc(publisher.dispatched_at) >= decided.decided_at  # called only after it
    assert publisher.prompt is not None and plain(publisher.prompt).endswith(waiting.subject)
    row = _approval(orc, run.id)
    assert (row.status, row.decided_by, row.note, row.applied_at is not None) == (
        "approved",
        "alice",
        "fine",
        True,
    )
    assert orc.approvals.pending(run.id) == []


def test_the_request_and_the_decision_are_on_the_audit_trail(orc: Orchestrator) -> None:
    run = orc.submit("publish", "the telegraph")
    waiting = _waiting(orc, run.id)
    orc.approve(run.id, "publish", by="alice", note="fine")
    run.wait(timeout=WAIT_S)

    with session_scope(orc.database_url) as session:
        rows = session.exec(select(MessageRow).where(MessageRow.workflow_id == run.id)).all()
    [asked] = [m for m in rows if m.recipients == ["@approvers"]]
    [answer] = [m for m in rows if m.sender == "@approvers" and m.type == "response"]
    decision = answer.payload["payload"]["approval"]
    assert decision["event"] == "approved" and decision["by"] == "alice"
    assert (decision["note"], decision["subject_hash"]) == ("fine", waiting.subject_hash)
    assert asked.type == "request" and asked.delivered_at is not None  # someone decided
    assert asked.payload["payload"]["approval"]["subject_hash"] == waiting.subject_hash
    assert asked.id == _approval(orc, run.id).request_id


def test_a_rejected_run_ends_rejected_saying_who_rejected_it(orc: Orchestrator) -> None:
    run = orc.submit("publish", "the telegraph")
    _waiting(orc, run.id)

    orc.reject(run.id, "publish", by="bob", note="not yet")
    result = run.wait(timeout=WAIT_S)

    assert result.status is WorkflowStatus.REJECTED
    assert result.error == "ApprovalRejected: gate 'publish' was rejected by bob: not yet"
    assert "publisher" not in _steps(orc, run.id)


def test_a_decision_naming_another_hash_is_refused_and_nothing_is_written(
    orc: Orchestrator,
) -> None:
    run = orc.submit("publish", "the telegraph")
    waiting = _waiting(orc, run.id)
    other = subject_hash(GATE, "publish", "another draft")

    with pytest.raises(ApprovalRefused, match="it changed since you saw it") as refused:
        orc.approve(run.id, "publish", by="alice", subject_hash=other[:16])

    assert run.id in str(refused.value) and waiting.subject_hash[:16] in str(refused.value)
    assert orc.approvals.pending(run.id) == [waiting]
    assert _approval(orc, run.id).decided_by is None
    with pytest.raises(ApprovalRefused, match="8 to 64 hex characters"):
        orc.approve(run.id, "publish", by="alice", subject_hash="abc")


def test_deciding_twice_is_refused_saying_who_decided_first(orc: Orchestrator) -> None:
    run = orc.submit("publish", "the telegraph")
    _waiting(orc, run.id)
    orc.approve(run.id, "publish", by="alice")
    run.wait(timeout=WAIT_S)

    with pytest.raises(ApprovalRefused, match=r"ended succeeded: nothing of it waits"):
        orc.reject(run.id, "publish", by="bob")

    second = orc.submit("twice", "the telephone")  # it waits at a second gate next
    _waiting(orc, second.id)
    orc.approve(second.id, "publish", by="alice", note="ok")
    with pytest.raises(ApprovalRefused, match=r"was approved by alice at .* UTC \(ok\): a"):
        orc.reject(second.id, "publish", by="carol")
    assert [p.gate for p in orc.approvals.pending(second.id)] == ["ship"]


def test_an_approval_of_an_output_that_changed_since_it_was_asked_for_is_refused(
    orc: Orchestrator,
) -> None:
    run = orc.submit("publish", "the telegraph")
    waiting = _waiting(orc, run.id)
    with session_scope(orc.database_url) as session:  # someone edits the draft in the database
        session.exec(  # type: ignore[call-overload]
            update(StepRow)
            .where(col(StepRow.workflow_id) == run.id, col(StepRow.node) == "writer")
            .values(output="an edited draft")
        )

    with pytest.raises(ApprovalRefused, match="the output it follows changed since"):
        orc.approve(run.id, "publish", by="alice", subject_hash=waiting.subject_hash)

    assert _approval(orc, run.id).status == "requested"
    orc.reject(run.id, "publish", by="alice", note="someone edited it")
    assert run.wait(timeout=WAIT_S).status is WorkflowStatus.REJECTED


def test_a_run_or_a_gate_that_is_not_there_is_refused_saying_so(orc: Orchestrator) -> None:
    with pytest.raises(RunNotFound, match="no workflow run with id 'nope'"):
        orc.approve("nope", "publish", by="alice")
    run = orc.submit("publish", "the telegraph")
    _waiting(orc, run.id)
    with pytest.raises(ApprovalRefused, match=r"at gate 'ship' \(its gates reached so far"):
        orc.approve(run.id, "ship", by="alice")
    with pytest.raises(ApprovalRefused, match="say who decides"):
        orc.approve(run.id, "publish", by="  ")


@pytest.mark.parametrize(
    ("on_timeout", "status"),
    [
        ("reject", WorkflowStatus.REJECTED),
        ("approve", WorkflowStatus.SUCCEEDED),
        ("fail", WorkflowStatus.FAILED),
    ],
)
def test_the_sweep_applies_a_gates_on_timeout_once_nobody_decided_by_its_due_time(
    orc: Orchestrator, on_timeout: str, status: WorkflowStatus
) -> None:
    run = orc.submit(f"quick-{on_timeout}", "the telegraph")
    waiting = _waiting(orc, run.id)
    assert waiting.due_at is not None and waiting.on_timeout == on_timeout
    sweep = Maintenance(orc.bus, orc.settings, team=orc.name)
    due: datetime = waiting.due_at
    _until(lambda: utcnow() > due, "the gate's due time")

    with pytest.raises(ApprovalRefused, match="was not decided by its due time"):
        orc.approve(run.id, "publish", by="late")
    assert sweep.sweep()["approvals_to_settle"] == 1
    result = run.wait(timeout=WAIT_S)

    assert result.status is status
    row = _approval(orc, run.id)
    assert (row.status, row.decided_by, row.applied_at is not None) == ("timed_out", None, True)
    assert sweep.sweep()["approvals_to_settle"] == 0


def test_a_decision_made_with_no_team_at_hand_is_carried_on_by_the_coordinators(
    orc: Orchestrator,
) -> None:
    run = orc.submit("publish", "the telegraph")
    _waiting(orc, run.id)
    anyone = Approvals(orc.database_url, None, route=orc.bus.route)

    decided = anyone.approve(run.id, "publish", by="alice")

    assert decided.applied is False  # the coordinator's worker goes on from it
    assert run.wait(timeout=WAIT_S).status is WorkflowStatus.SUCCEEDED
    assert _approval(orc, run.id).applied_at is not None


def test_a_decision_whose_advance_was_lost_is_carried_on_by_the_sweep(orc: Orchestrator) -> None:
    run = orc.submit("publish", "the telegraph")
    _waiting(orc, run.id)
    Approvals(orc.database_url, None, route=None).approve(run.id, "publish", by="alice")
    sweep = Maintenance(orc.bus, orc.settings, team=orc.name)

    assert sweep.sweep()["approvals_to_settle"] == 1
    assert run.wait(timeout=WAIT_S).status is WorkflowStatus.SUCCEEDED
