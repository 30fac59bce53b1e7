"""Approval gates: what a person approves, the hash an approval is bound to, and the audit trail.

An approval is bound to the hash of what it approves (``subject_hash``): the kind, the gate's
name (or the tool's) and the subject (the output a gate passes on; a tool's arguments as
canonical JSON). A decision that names another hash is refused, and a gate that is given
another text is asked anew. A gate passes on exactly the text that was approved.

Every request and decision is also a message on the audit trail: asked of ``@approvers`` by the
coordinator (delivered when someone decides), answered by ``@approvers`` with who, when, the
note and the hash. Nothing here touches a database or the broker.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta
from typing import Any

from bus.envelope import APPROVERS, COORDINATOR, AgentMessage, MessageType
from orchestration.workflow.graph import ApprovalNode, ToolApprovals
from orchestration.workflow.state import ApprovalState, RunState
from storage.models import ApprovalStatus, new_id
from storage.tool_ledger import AwaitingCall

GATE = "gate"  # an approval's kind: what a gate of the graph passes on
TOOL = "tool"  # a tool call, before it runs
HASH_PREFIX_MIN = 8  # hex characters a person must give of a hash (``--hash``)
HASH_SHOWN = 16  # hex characters of a hash shown to people: enough to bind a decision to it


def described(kind: str, gate: str) -> str:
    """What an approval is of, as people read it: ``gate publish``, ``tool call refund``."""
    return f"gate {gate}" if kind == GATE else f"tool call {gate}"


def short(hashed: str) -> str:
    """A subject's hash as people see it (and may give it back)."""
    return hashed[:HASH_SHOWN]


def subject_hash(kind: str, name: str, subject: str) -> str:
    """The SHA-256 (hex) an approval is bound to: of its kind, its gate's (or tool's) name and
    its subject, encoded without ambiguity (a JSON list, not a concatenation)."""
    encoded = json.dumps([kind, name, subject], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(encoded.encode("utf-8")).hexdigest()


def tool_subject(arguments: dict[str, Any]) -> str:
    """A tool call's arguments as the subject its approval is bound to: canonical JSON (keys
    sorted, no spaces), so that the same arguments always hash the same."""
    return json.dumps(arguments, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def tool_node(step_id: str, turn: int, index: int) -> str:
    """What an approval of a tool call is kept under: the ``index``-th call of the step's answer
    ``turn`` (it names the step, so it is one in its run, whatever the frame)."""
    return f"tool:{step_id}:{turn}:{index}"


def tool_hash(tool: str, arguments: dict[str, Any]) -> str:
    """The hash an approval of calling ``tool`` with exactly ``arguments`` is bound to."""
    return subject_hash(TOOL, tool, tool_subject(arguments))


def ask_tool(
    policy: ToolApprovals,
    scope: str,
    step_id: str,
    call: AwaitingCall,
    now: datetime,
) -> ApprovalState:
    """The approval ``call``, a tool call of step ``step_id`` in the frame ``scope`` that waits
    on the tool ledger, asks for, as the workflow's ``policy`` says: asked of people by the
    tool's name, bound to its exact arguments."""
    due = None if policy.timeout_s is None else now + timedelta(seconds=policy.timeout_s)
    return ApprovalState(
        id=new_id(),
        gate=call.tool,
        scope=scope,
        node=tool_node(step_id, call.turn, call.index),
        kind=TOOL,
        on_timeout=policy.on_timeout,
        subject=tool_subject(call.arguments),
        subject_hash=tool_hash(call.tool, call.arguments),
        source_id=step_id,
        requested_at=now,
        due_at=due,
    )


def ask(
    node: ApprovalNode,
    scope: str,
    text: str,
    hashed: str,
    source: str | None,
    now: datetime,
    kept: ApprovalState | None,
) -> ApprovalState:
    """The approval ``node`` asks for of ``text`` (whose ``subject_hash`` is ``hashed``, the
    output of ``source``) in the frame ``scope``: a new one, or ``kept`` (the one asked for
    before in that frame) asked anew."""
    due = None if node.timeout_s is None else now + timedelta(seconds=node.timeout_s)
    if kept is None:
        return ApprovalState(
            id=new_id(),
            gate=node.gate,
            scope=scope,
            node=node.name,
            kind=GATE,
            on_timeout=node.on_timeout,
            subject=text,
            subject_hash=hashed,
            source_id=source,
            requested_at=now,
            due_at=due,
        )
    kept.status = ApprovalStatus.REQUESTED.value
    kept.subject, kept.subject_hash, kept.source_id = text, hashed, source
    kept.requests += 1
    kept.requested_at, kept.due_at = now, due
    kept.decided_at = kept.decided_by = kept.note = kept.applied_at = None
    return kept


def timed_out(approval: ApprovalState, now: datetime) -> None:
    """Nobody decided ``approval`` by its due time: it is decided so now, by its on_timeout."""
    approval.status = ApprovalStatus.TIMED_OUT.value
    approval.decided_at = now
    approval.decided_by = None
    approval.note = f"not decided by {approval.due_at:%Y-%m-%d %H:%M:%S} UTC: {approval.on_timeout}"


def outcome(approval: ApprovalState) -> str:
    """What the run does with a decided ``approval``: ``approve``, ``reject`` or ``fail``."""
    if approval.status == ApprovalStatus.TIMED_OUT.value:
        return approval.on_timeout
    return "approve" if approval.status == ApprovalStatus.APPROVED.value else "reject"


def _about(approval: ApprovalState, event: str) -> dict[str, Any]:
    """What every audit message of ``approval`` says: which approval, bound to which hash."""
    return {
        "event": event,
        "gate": approval.gate,
        "kind": approval.kind,
        "scope": approval.scope,
        "node": approval.node,
        "subject_hash": approval.subject_hash,
    }


def request_message(run: RunState, approval: ApprovalState) -> AgentMessage:
    """The audit trail's record that ``approval`` was asked for (``request_id`` on its row)."""
    return AgentMessage(
        type=MessageType.REQUEST,
        sender=COORDINATOR,
        to=(APPROVERS,),
        workflow_id=run.id,
        priority=run.priority,
        timestamp=approval.requested_at,
        payload={
            "approval": {
                **_about(approval, "requested"),
                "request": approval.requests,
                "due_at": None if approval.due_at is None else approval.due_at.isoformat(),
                "on_timeout": approval.on_timeout,
            }
        },
    )


def decision_message(
    workflow_id: str, priority: int, approval: ApprovalState, decided_at: datetime
) -> AgentMessage:
    """The audit trail's record of the decision on ``approval``: who, when, the note, the hash
    (a timeout's says what it applied)."""
    decision: dict[str, Any] = {
        **_about(approval, approval.status),
        "by": approval.decided_by,
        "note": approval.note,
        "decided_at": decided_at.isoformat(),
    }
    if approval.status == ApprovalStatus.TIMED_OUT.value:
        decision["applied"] = approval.on_timeout
    return AgentMessage(
        type=MessageType.RESPONSE,
        sender=APPROVERS,
        to=(COORDINATOR,),
        workflow_id=workflow_id,
        priority=priority,
        timestamp=decided_at,
        payload={"approval": decision},
    )
