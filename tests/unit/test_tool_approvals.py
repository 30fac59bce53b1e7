"""Tool calls that wait for a person's approval, as the interpreter decides them over an
in-memory store: an attempt that stopped at such a call makes the step wait (no retry spent,
nothing dispatched) and asks for an approval bound to the tool and its exact arguments; once it
is decided, approved or rejected, another attempt carries on; a timeout applies the workflow's
tool_approval_on_timeout; the step request says when untrusted side effects need approval."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bus.envelope import APPROVE_UNTRUSTED_SIDE_EFFECTS
from orchestration import Agent
from orchestration.workflow.gates import TOOL, subject_hash, tool_node, tool_subject
from orchestration.workflow.graph import ToolApprovals, build_graph
from orchestration.workflow.state import ApprovalState, StepState
from storage.errors import ToolApprovalNeeded
from storage.tool_ledger import AwaitingCall
from tests.graph_script import Scripted, team_of
from tests.tool_examples import refund, whoami

REFUND = AwaitingCall(turn=1, index=0, tool="refund", arguments={"order": 7, "amount": 12.5})


def _script(policy: ToolApprovals | None = None) -> Scripted:
    clerk = Agent(id="clerk", model="offline:echo", tools=[refund, whoami])
    graph = build_graph(["clerk", "reviewer"], "w", tool_approvals=policy)
    return Scripted(graph, team_of(clerk, "reviewer"))


def _stop_for_approval(script: Scripted, step: StepState, call: AwaitingCall = REFUND) -> None:
    """The worker's attempt stopped at ``call``, which it put on the tool ledger to wait."""
    script.store.awaiting.setdefault(step.id, []).append(call)
    script.fail(step, ToolApprovalNeeded.kind)


def _decide(script: Scripted, status: str, by: str = "alice", note: str | None = None) -> None:
    [waiting] = [a for a in script.store.approvals if a.waiting]
    waiting.status, waiting.decided_by, waiting.note = status, by, note
    waiting.decided_at = script.now
    script.advance()


def test_a_call_waiting_for_approval_holds_its_step_and_asks_bound_to_its_arguments() -> None:
    script = _script()
    script.start()
    [clerk] = script.dispatched()

    _stop_for_approval(script, clerk)

    [asked] = script.store.approvals
    assert (asked.kind, asked.gate, asked.node, asked.scope, asked.source_id) == (
        TOOL,
        "refund",
        tool_node(clerk.id, 1, 0),
        "",
        clerk.id,
    )
    assert asked.subject == '{"amount":12.5,"order":7}'
    assert asked.subject_hash == subject_hash(TOOL, "refund", tool_subject(REFUND.arguments))
    assert asked.due_at == asked.requested_at + timedelta(days=1)
    assert asked.on_timeout == "reject"
    assert (clerk.status, clerk.agent_attempt) == ("pending", 0)  # no retry spent
    assert script.run.status == "waiting_approval"
    assert script.plans[-1].requested == [asked] and not script.plans[-1].messages
    script.advance()  # the sweep looking again sends nothing
    assert not script.dispatched() and script.run.status == "waiting_approval"


@pytest.mark.parametrize("status", ["approved", "rejected"])
def test_once_a_person_decides_another_attempt_carries_the_conversation_on(status: str) -> None:
    script = _script()
    script.start()
    [clerk] = script.dispatched()
    _stop_for_approval(script, clerk)

    _decide(script, status, note="checked")

    [again] = script.dispatched()
    assert again is clerk and clerk.attempt == 2 and clerk.error_kind is None
    assert script.run.status == "running"
    assert script.store.approvals[0].applied_at is not None
    script.answer(clerk, "refunded, or told the customer why not")
    [reviewer] = script.dispatched()
    script.answer(reviewer, "fine")
    assert script.run.status == "succeeded"


@pytest.mark.parametrize("on_timeout", ["reject", "approve"])
def test_a_call_nobody_decides_in_time_is_taken_up_again_to_refuse_or_run_it(
    on_timeout: str,
) -> None:
    script = _script(ToolApprovals(timeout_s=60, on_timeout=on_timeout))  # type: ignore[arg-type]
    script.start()
    [clerk] = script.dispatched()
    _stop_for_approval(script, clerk)

    script.now += timedelta(seconds=61)
    script.advance()

    [approval] = script.store.approvals
    assert approval.status == "timed_out" and approval.decided_by is None
    assert approval.on_timeout == on_timeout  # the worker reads it, and runs or refuses
    assert script.dispatched() == [clerk] and script.run.status == "running"


def test_a_call_nobody_decides_in_time_fails_its_step_when_the_workflow_says_fail() -> None:
    script = _script(ToolApprovals(timeout_s=60, on_timeout="fail"))
    script.start()
    [clerk] = script.dispatched()
    _stop_for_approval(script, clerk)

    script.now += timedelta(seconds=61)
    script.advance()

    assert clerk.status == "failed" and clerk.error_kind == "approval_timed_out"
    assert script.run.status == "failed"
    assert "ApprovalTimedOut: the call of tool 'refund'" in (script.run.error or "")
    assert "tool_approval_on_timeout is 'fail'" in (script.run.error or "")


def test_a_second_call_of_the_same_step_asks_for_an_approval_of_its_own() -> None:
    script = _script()
    script.start()
    [clerk] = script.dispatched()
    _stop_for_approval(script, clerk)
    _decide(script, "approved")

    later = AwaitingCall(turn=2, index=0, tool="whoami", arguments={})
    _stop_for_approval(script, clerk, later)

    first, second = script.store.approvals
    assert (first.status, second.status) == ("approved", "requested")
    assert second.node == tool_node(clerk.id, 2, 0) and second.gate == "whoami"
    assert script.run.status == "waiting_approval"


def test_an_attempt_that_read_the_approval_before_it_was_decided_is_sent_again() -> None:
    script = _script()
    script.start()
    [clerk] = script.dispatched()
    _stop_for_approval(script, clerk)
    [asked] = script.store.approvals
    asked.status, asked.decided_by, asked.decided_at = "approved", "alice", script.now
    script.advance()
    assert clerk.attempt == 2

    script.fail(clerk, ToolApprovalNeeded.kind)  # a stale read: the decision stands

    assert clerk.status == "dispatched" and clerk.attempt == 3
    assert len(script.store.approvals) == 1


def test_an_attempt_stopped_for_a_call_the_ledger_lacks_fails_its_step() -> None:
    script = _script()
    script.start()
    [clerk] = script.dispatched()

    script.fail(clerk, ToolApprovalNeeded.kind)

    assert clerk.status == "failed" and script.run.status == "failed"
    assert "not on the tool ledger" in (script.run.error or "")


@pytest.mark.parametrize("untrusted", [True, False])
def test_the_step_request_says_when_untrusted_side_effects_wait_for_approval(
    untrusted: bool,
) -> None:
    script = _script(ToolApprovals(untrusted_side_effects=untrusted))
    plan = script.start()
    [request] = plan.messages
    assert request.payload.get(APPROVE_UNTRUSTED_SIDE_EFFECTS, False) is untrusted


def test_a_graph_whose_tools_never_need_approval_reads_no_approvals_on_advance() -> None:
    script = Scripted.of(["reader"], "reader")
    script.start()
    script.store.approvals.append(
        ApprovalState(
            id="x",
            gate="g",
            scope="",
            node="n",
            kind=TOOL,
            on_timeout="reject",
            subject="{}",
            subject_hash="h",
            requested_at=script.now,
            status="approved",
        )
    )
    script.advance()
    assert script.store.approvals[0].applied_at is None
