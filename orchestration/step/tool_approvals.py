"""Which tool calls wait for a person's approval, and what the person decided, as the worker
that is to run a call reads it.

A call waits for approval when its tool says ``needs_approval=True``, or when it has side
effects, the run's workflow says ``approve_untrusted_side_effects=True`` (the step request
carries the flag), and the context the model called it from holds untrusted text: a tool's
result (every answer after the first has read some), or a prompt whose provenance is untrusted
(the workflow's input, an output derived from it).

The decision is read from the approval row of the call (``gates.tool_node``), which the
coordinator asked for when an attempt stopped at the call. It is bound to the hash of the tool
and its exact arguments: an approval of anything else is a refusal. Nothing here writes.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import bindparam, select

from bus.envelope import APPROVE_UNTRUSTED_SIDE_EFFECTS
from orchestration.guards.provenance import Provenance, derived
from orchestration.step.claim import Attempt
from orchestration.tools import ToolSpec
from orchestration.workflow import gates
from orchestration.workflow.state import ApprovalState
from storage import approvals
from storage.executor import run_alone
from storage.statements import steps
from workers.providers.base import ToolUse

_PROVENANCE_OF_STEP = select(steps.c.provenance).where(steps.c.id == bindparam("w_id"))


@dataclass(frozen=True, slots=True)
class CallVerdict:
    """What a person made of a call: nothing yet (``waits``), or ``refusal`` (None: approved,
    it runs; otherwise what the model is told instead of a result)."""

    waits: bool = False
    refusal: str | None = None


class ToolApprovalChecks:
    def __init__(self, database_url: str) -> None:
        self._url = database_url

    def needed(self, this: Attempt, spec: ToolSpec, turn: int) -> bool:
        """Whether the call of ``spec`` in the model's answer ``turn`` waits for approval."""
        if spec.needs_approval:
            return True
        if not spec.side_effects or not this.message.payload.get(APPROVE_UNTRUSTED_SIDE_EFFECTS):
            return False
        return turn > 0 or self._untrusted_prompt(this.step_id)

    def decision(self, this: Attempt, turn: int, index: int, use: ToolUse) -> CallVerdict:
        """What was decided about the ``index``-th call of the answer ``turn``."""
        node = gates.tool_node(this.step_id, turn, index)
        params = {"w_id": str(this.message.workflow_id), "w_node": node}
        row = run_alone(self._url, approvals.APPROVAL_OF_NODE, params).one_or_none()
        if row is None:
            return CallVerdict(waits=True)
        approval = ApprovalState(**row._asdict())
        if approval.waiting:
            return CallVerdict(waits=True)
        if approval.subject_hash != gates.tool_hash(use.name, dict(use.input)):
            return CallVerdict(
                refusal=f"not run: the approval on record (hash "
                f"{gates.short(approval.subject_hash)}...) is for other arguments than these"
            )
        outcome = gates.outcome(approval)
        if outcome == "approve":
            return CallVerdict()
        if approval.decided_by is None:
            return CallVerdict(
                refusal="not run: nobody approved this call in time, so it was refused; do not "
                "call it again, say in your answer that it awaits a person's approval"
            )
        note = f": {approval.note}" if approval.note else ""
        return CallVerdict(
            refusal=f"not run: {approval.decided_by} rejected this call{note}. Do not call it "
            "again with the same arguments; answer without it, or as the note says"
        )

    def _untrusted_prompt(self, step_id: str) -> bool:
        found = run_alone(self._url, _PROVENANCE_OF_STEP, {"w_id": step_id}).scalar()
        pieces = [Provenance.from_json(piece) for piece in found or ()]
        return derived(pieces) == "untrusted"
