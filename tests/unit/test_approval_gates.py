"""Approval gates decided by the interpreter over an in-memory store: the run waits at a gate
holding nothing, the next step is made only once a person approved, exactly the approved text
goes on; a rejection ends the run rejected; a gate's timeout applies its on_timeout; a gate given
another text is asked anew, bound to a new hash."""

from __future__ import annotations

from datetime import timedelta

import pytest

from orchestration import InvalidDefinition, Workflow, approval, check, fan_out
from orchestration.guards.spotlight import unmark_prompt as plain
from orchestration.workflow.gates import GATE, subject_hash, tool_subject
from orchestration.workflow.graph import ApprovalNode, Graph
from orchestration.workflow.state import ApprovalState
from tests.graph_script import Scripted
from tests.workflow_functions import cites_sources, lines


def decide(
    script: Scripted, gate: str, status: str, by: str = "alice", note: str | None = None
) -> ApprovalState:
    """A person's decision on the gate that waits, as ``orc.approve`` records it; then the
    coordinator's advance."""
    [waiting] = [a for a in script.store.approvals if a.gate == gate and a.waiting]
    waiting.status, waiting.decided_by, waiting.note = status, by, note
    waiting.decided_at = script.now
    script.advance()
    return waiting


def test_a_gate_makes_the_run_wait_and_the_next_step_is_made_only_once_it_is_approved() -> None:
    script = Scripted.of(["writer", approval("publish"), "publisher"], "writer", "publisher")
    script.start()
    [writer] = script.dispatched()
    plan = script.answer(writer, "the draft")

    [asked] = script.store.approvals
    assert (asked.gate, asked.node, asked.scope, asked.status) == (
        "publish",
        "publish",
        "",
        "requested",
    )
    assert asked.subject == "the draft" and asked.source_id == writer.id
    assert asked.subject_hash == subject_hash(GATE, "publish", "the draft")
    assert asked.due_at == asked.requested_at + timedelta(days=1)
    assert script.run.status == "waiting_approval" and plan.run_changed
    assert not plan.messages and not script.steps_of("publisher")  # nothing dispatched, held
    script.advance()  # the sweep looking again changes nothing
    assert not script.steps_of("publisher") and script.run.status == "waiting_approval"

    decide(script, "publish", "approved")

    [publisher] = script.dispatched()
    assert publisher.node == "publisher" and script.run.status == "running"
    assert publisher.prompt is not None and plain(publisher.prompt).endswith("the draft")
    assert asked.applied_at is not None
    script.answer(publisher, "published")
    assert (script.run.status, script.run.output) == ("succeeded", "published")


def test_the_request_and_the_decision_are_on_the_audit_trail_and_never_routed() -> None:
    script = Scripted.of(["writer", approval("publish")], "writer")
    script.start()
    [writer] = script.dispatched()
    asking = script.answer(writer, "the draft")
    [(request, delivered)] = asking.audit

    assert (request.type, request.sender, request.to, delivered) == (
        "request",
        "coordinator",
        ("@approvers",),
        None,
    )
    asked = script.store.approvals[0]
    assert request.id == asked.request_id
    assert request.payload["approval"]["subject_hash"] == asked.subject_hash
    assert asking.requested == [asked]  # for the webhook
    decide(script, "publish", "approved", note="fine by me")

    assert script.plans[-1].audit == []  # a person's decision is on record where it was made
    assert (script.run.status, script.run.output) == ("succeeded", "the draft")


def test_a_rejection_ends_the_run_rejected_saying_who_rejected_it_and_why() -> None:
    script = Scripted.of(["writer", approval("publish"), "publisher"], "writer", "publisher")
    script.start()
    [writer] = script.dispatched()
    script.answer(writer, "the draft")

    decide(script, "publish", "rejected", by="bob", note="too long")

    assert script.run.status == "rejected" and script.run.finished_at is not None
    assert script.run.error == "ApprovalRejected: gate 'publish' was rejected by bob: too long"
    assert script.run.output is None  # what was rejected is not the run's output
    assert not script.steps_of("publisher")


@pytest.mark.parametrize(
    ("on_timeout", "status", "error"),
    [
        (
            "reject",
            "rejected",
            "ApprovalRejected: gate 'publish' was not decided within 60s, and its on_timeout "
            "is 'reject'",
        ),
        ("approve", "succeeded", None),
        (
            "fail",
            "failed",
            "ApprovalTimedOut: gate 'publish' was not decided within 60s (its on_timeout is "
            "'fail'); give approval(...) a longer timeout_s, or decide sooner",
        ),
    ],
)
def test_a_gate_nobody_decides_in_time_applies_its_on_timeout(
    on_timeout: str, status: str, error: str | None
) -> None:
    script = Scripted.of(
        ["writer", approval("publish", timeout_s=60, on_timeout=on_timeout)],
        "writer",  # type: ignore[arg-type]
    )
    script.start()
    [writer] = script.dispatched()
    script.answer(writer, "the draft")
    script.now += timedelta(seconds=59)
    script.advance()
    assert script.run.status == "waiting_approval"

    script.now += timedelta(seconds=1)
    plan = script.advance()

    [asked] = script.store.approvals
    assert (asked.status, asked.decided_by) == ("timed_out", None)
    assert (script.run.status, script.run.error) == (status, error)
    [(decision, delivered)] = plan.audit
    assert decision.payload["approval"]["applied"] == on_timeout and delivered == script.now
    if status == "succeeded":
        assert script.run.output == "the draft"


def test_a_gate_given_another_text_is_asked_anew_bound_to_the_new_texts_hash() -> None:
    # The check after the gate refuses the writer's first draft: the writer is asked again, and
    # the gate is given the new draft, which nobody has approved.
    script = Scripted.of(
        ["writer", approval("publish"), check(cites_sources), "publisher"], "writer", "publisher"
    )
    script.start()
    [writer] = script.dispatched()
    script.answer(writer, "a draft")
    first = decide(script, "publish", "approved")
    first_hash = first.subject_hash
    assert script.dispatched() == [writer]  # the check refused it: asked again
    script.answer(writer, "a draft citing [1]")

    [asked] = script.store.approvals
    assert asked is first and asked.waiting and asked.requests == 2
    assert asked.subject == "a draft citing [1]" and asked.subject_hash != first_hash
    assert (asked.decided_by, asked.applied_at) == (None, None)
    assert script.run.status == "waiting_approval" and not script.steps_of("publisher")
    decide(script, "publish", "approved")
    assert [s.node for s in script.dispatched()] == ["publisher"]


def test_each_branch_of_a_fan_out_waits_at_its_own_gate_and_the_run_waits_while_any_does() -> None:
    script = Scripted.of(
        [fan_out(["writer", approval("publish")], over=lines), "publisher"],
        "writer",
        "publisher",
        input="one\ntwo",
    )
    script.start()
    for writer in script.dispatched():
        script.answer(writer, f"about {writer.branch}")

    scopes = sorted(a.scope for a in script.store.approvals)
    assert scopes == ["fan_out1#0", "fan_out1#1"]
    [one, two] = sorted(script.store.approvals, key=lambda a: a.scope)
    one.status, one.decided_by, one.decided_at = "approved", "alice", script.now
    script.advance()
    assert script.run.status == "waiting_approval" and not script.steps_of("publisher")
    two.status, two.decided_by, two.decided_at = "approved", "alice", script.now
    script.advance()

    assert script.run.status == "running"
    [publisher] = script.dispatched()
    assert publisher.prompt is not None
    assert "about 0" in plain(publisher.prompt) and "about 1" in plain(publisher.prompt)


def test_a_gate_with_no_time_limit_waits_until_a_person_decides() -> None:
    script = Scripted.of(["writer", approval("publish", timeout_s=None)], "writer")
    script.start()
    [writer] = script.dispatched()
    script.answer(writer, "the draft")
    [asked] = script.store.approvals
    assert asked.due_at is None
    script.now += timedelta(days=400)
    script.advance()
    assert script.run.status == "waiting_approval"

    decide(script, "publish", "rejected", by="bob")

    assert script.run.error == "ApprovalRejected: gate 'publish' was rejected by bob"


def test_a_run_waiting_at_a_gate_past_its_deadline_times_out() -> None:
    script = Scripted.of(["writer", approval("publish", timeout_s=None)], "writer")
    script.run.deadline_at = script.now + timedelta(minutes=5)
    script.start()
    [writer] = script.dispatched()
    script.answer(writer, "the draft")
    script.now += timedelta(minutes=5)

    script.advance()

    assert (script.run.status, script.run.output) == ("timed_out", "the draft")
    assert script.store.approvals[0].waiting  # left as it was: its run ended


def test_a_gate_first_in_a_workflow_asks_about_the_request_itself() -> None:
    script = Scripted.of([approval("start"), "writer"], "writer", input="delete the archive")
    plan = script.start()

    [asked] = script.store.approvals
    assert (asked.subject, asked.source_id, script.run.status) == (
        "delete the archive",
        None,
        "waiting_approval",
    )
    assert plan.run_changed and not script.dispatched()
    decide(script, "start", "approved")
    assert [s.node for s in script.dispatched()] == ["writer"]
    assert script.run.status == "running"


def test_a_workflow_without_gates_never_asks_for_its_approvals() -> None:
    script = Scripted.of(["writer"], "writer")

    def refuse(now: object) -> list[ApprovalState]:
        raise AssertionError("a graph without gates has no approvals to look for")

    script.store.settleable_approvals = refuse  # type: ignore[method-assign]
    script.start()
    script.advance()
    assert script.dispatched()


# -- the node ---------------------------------------------------------------------------------


def test_a_gate_is_named_by_its_gate_and_kept_in_the_runs_json() -> None:
    workflow = Workflow(
        "w", ["writer", approval("publish", timeout_s=None, on_timeout="fail"), "writer"]
    )
    [_, gate, _] = workflow.graph.nodes

    assert gate == ApprovalNode("publish", None, "fail", "publish")
    assert Graph.from_json(workflow.graph.to_json()) == workflow.graph
    assert workflow.graph.gates == (gate,)


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (lambda: approval("Publish"), "approval(gate) must be 1-63 lower-case letters"),
        (lambda: approval("publish", timeout_s=0), "approval(timeout_s) must be a number"),
        (lambda: approval("publish", timeout_s=True), "approval(timeout_s) must be a number"),
        (lambda: approval("publish", on_timeout="ignore"), "approval(on_timeout) must be one of"),
    ],
)
def test_a_gate_that_cannot_work_is_refused_saying_what_it_takes(make: object, says: str) -> None:
    with pytest.raises(InvalidDefinition, match=says.replace("(", r"\(").replace(")", r"\)")):
        make()  # type: ignore[operator]


def test_a_gate_named_twice_in_a_workflow_is_refused() -> None:
    with pytest.raises(InvalidDefinition, match=r"names the approval gate\(s\) \['publish'\]"):
        Workflow("w", ["writer", approval("publish"), fan_out([approval("publish")], over=lines)])


def test_a_tool_calls_subject_is_its_arguments_as_canonical_json() -> None:
    assert tool_subject({"b": 1, "a": "é"}) == '{"a":"é","b":1}'
    assert subject_hash("tool", "refund", tool_subject({"amount": 5})) != subject_hash(
        "gate", "refund", tool_subject({"amount": 5})
    )
