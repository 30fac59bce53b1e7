"""A person's decisions: what waits for approval, and approving or rejecting it.

``orc.approvals.pending()`` lists what waits; ``orc.approve(run_id, gate, by=...)`` and
``orc.reject(...)`` decide (``agentyard approvals``, ``approve`` and ``reject`` on the shell). A
decision is made under the run's lock, as the coordinator's are, and is refused
(``ApprovalRefused``, nothing written) unless the gate waits: asked for, not decided, not past its
due time, its run not finished. It is bound to what is approved: given a hash (or the first
characters of one, as ``agentyard approvals`` shows them), what the gate is to pass on must be
what that hash says, and an approval is refused if the output the gate follows changed since it
was asked for.

The decision is recorded (the approval's row, by compare-and-set; a message on the audit trail
with who, when, the note and the hash), then the run goes on from it: in the same transaction
when a coordinator is at hand (``orc.approve``), routing what it dispatched after the commit;
otherwise (the command line given no team) by an ``advance`` to the coordinators. Should that be
lost, the coordinators' sweep asks again for every decision its run has not gone on from.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bus.envelope import APPROVERS, AgentMessage, advance
from bus.publisher import record
from orchestration.coordinator import Coordinator, Decision, lock_workflow, mark_delivered
from orchestration.workflow import gates
from orchestration.workflow.state import ApprovalState, describe_scope
from storage import approvals as table
from storage.db import session_scope
from storage.errors import ApprovalRefused, RunNotFound
from storage.executor import Tx, transaction
from storage.models import ApprovalStatus, WorkflowStatus, as_utc, utcnow

MAX_BY = 200  # characters of who decided
MAX_NOTE = 4000  # characters of their note


@dataclass(frozen=True, slots=True)
class PendingApproval:
    """An approval a run waits for: of what (``subject``, in full, and its ``subject_hash``), at
    which gate (in which frame: ``scope``, '' at the top), since when and until when (then
    ``on_timeout`` applies; None: no limit)."""

    run_id: str
    team: str
    workflow: str
    gate: str
    scope: str
    kind: str  # gate, or tool
    subject: str
    subject_hash: str
    requested_at: datetime
    due_at: datetime | None
    on_timeout: str
    requests: int = 1  # asked again when what it follows changed

    def as_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "team": self.team,
            "workflow": self.workflow,
            "gate": self.gate,
            "scope": self.scope,
            "kind": self.kind,
            "subject": self.subject,
            "subject_hash": self.subject_hash,
            "requested_at": self.requested_at.isoformat(),
            "due_at": None if self.due_at is None else self.due_at.isoformat(),
            "on_timeout": self.on_timeout,
            "requests": self.requests,
        }


@dataclass(frozen=True, slots=True)
class ApprovalDecision:
    """A decision as it was recorded: ``status`` is ``approved`` or ``rejected``; ``applied``
    whether the run went on from it already (False: the coordinators will)."""

    run_id: str
    gate: str
    scope: str
    status: str
    by: str
    kind: str  # gate, or tool
    note: str | None
    subject_hash: str
    decided_at: datetime
    applied: bool


class Approvals:
    """What waits for a person, and their decisions, in the database ``database_url``: a team's
    runs only (``team``), or every team's (None)."""

    def __init__(
        self,
        database_url: str,
        team: str | None,
        *,
        coordinator: Callable[[], Coordinator] | None = None,
        route: Callable[[Sequence[AgentMessage]], object] | None = None,
    ) -> None:
        """``coordinator`` gives the team's coordinator, with which the run goes on in the
        decision's own transaction (its team's runs only; asked for when a decision is made).
        Without one, the decision asks the coordinators with an advance, sent with ``route``
        (None: left to their sweep)."""
        if coordinator is not None and team is None:
            raise ValueError("a coordinator decides for its own team's runs: name the team")
        self._url = database_url
        self._team = team
        self._coordinator = coordinator
        self._route = route

    def pending(self, run_id: str | None = None) -> list[PendingApproval]:
        """What waits for a decision, oldest first: of one run, or of every unfinished run."""
        query = table.PENDING
        if self._team is not None:
            query = query.where(table.workflows.c.team == self._team)
        if run_id is not None:
            query = query.where(table.approvals.c.workflow_id == run_id)
        with session_scope(self._url) as session:
            rows = session.execute(query).all()
        return [
            PendingApproval(
                run_id=row.workflow_id,
                team=row.team,
                workflow=row.workflow,
                gate=row.gate,
                scope=row.scope,
                kind=row.kind,
                subject=row.subject,
                subject_hash=row.subject_hash,
                requested_at=as_utc(row.requested_at),
                due_at=as_utc(row.due_at),
                on_timeout=row.on_timeout,
                requests=row.requests,
            )
            for row in rows
        ]

    def approve(
        self,
        run_id: str,
        gate: str,
        *,
        by: str,
        note: str | None = None,
        subject_hash: str | None = None,
        scope: str | None = None,
    ) -> ApprovalDecision:
        """Approve what ``gate`` of run ``run_id`` waits to pass on; the run goes on with it.
        ``subject_hash`` (or its first characters, 8 at least): refused unless it is what is
        approved. ``scope``: which frame, when the gate waits in several (a fan-out's)."""
        return self._decide(run_id, gate, ApprovalStatus.APPROVED, by, note, subject_hash, scope)

    def reject(
        self,
        run_id: str,
        gate: str,
        *,
        by: str,
        note: str | None = None,
        subject_hash: str | None = None,
        scope: str | None = None,
    ) -> ApprovalDecision:
        """Reject what ``gate`` of run ``run_id`` waits to pass on: the run ends ``rejected``."""
        return self._decide(run_id, gate, ApprovalStatus.REJECTED, by, note, subject_hash, scope)

    def _decide(
        self,
        run_id: str,
        gate: str,
        status: ApprovalStatus,
        by: str,
        note: str | None,
        subject_hash: str | None,
        scope: str | None,
    ) -> ApprovalDecision:
        who, said, given = _person(by), _note(note), _hash_prefix(subject_hash)
        decision: Decision | None = None
        nudge: AgentMessage | None = None
        coordinator = None if self._coordinator is None else self._coordinator()
        with transaction(self._url) as tx:
            self._check_run(tx, run_id)
            run = lock_workflow(tx, run_id)
            assert run is not None  # it was there a moment ago, and runs are never deleted
            if WorkflowStatus(run.status).finished:
                raise ApprovalRefused(
                    f"run {run_id} ended {run.status}: nothing of it waits for a decision"
                )
            approval = _waiting(tx, run_id, gate, scope)
            now = utcnow()
            _check(tx, run_id, approval, status, given, now)
            decided = tx.run(
                table.DECIDE,
                {
                    "w_id": approval.id,
                    "w_hash": approval.subject_hash,
                    "status": status.value,
                    "decided_at": now,
                    "decided_by": who,
                    "note": said,
                },
            )
            if decided.rowcount != 1:  # under the run's lock, only a hand in the database
                raise ApprovalRefused(
                    f"gate {gate!r} of run {run_id} changed while it was decided; look again "
                    "with `agentyard approvals`"
                )
            approval.status, approval.decided_by, approval.note = status.value, who, said
            approval.decided_at = now
            if approval.request_id is not None:
                mark_delivered(tx, approval.request_id)
            record(tx, gates.decision_message(run.id, run.priority, approval, now), now)
            if coordinator is not None:
                decision = coordinator.decide(tx, run)
            else:
                nudge = advance(sender=APPROVERS, workflow_id=run.id, priority=run.priority)
                record(tx, nudge)
        if decision is not None and coordinator is not None:
            coordinator.after_commit(decision)
        elif nudge is not None and self._route is not None:
            self._route([nudge])
        return ApprovalDecision(
            run_id=run_id,
            gate=approval.gate,
            scope=approval.scope,
            status=status.value,
            by=who,
            kind=approval.kind,
            note=said,
            subject_hash=approval.subject_hash,
            decided_at=now,
            applied=decision is not None,
        )

    def _check_run(self, tx: Tx, run_id: str) -> None:
        found = tx.run(table.RUN_OF, {"w_id": run_id}).one_or_none()
        if found is None:
            raise RunNotFound(
                f"no workflow run with id {run_id!r} in this database; `agentyard approvals` "
                "lists the runs that wait for a decision"
            )
        if self._team is not None and found.team != self._team:
            raise ApprovalRefused(
                f"run {run_id} is a run of team {found.team!r}, not of {self._team!r}: decide "
                "it with its own team (or with no team named)"
            )


def _waiting(tx: Tx, run_id: str, gate: str, scope: str | None) -> ApprovalState:
    """The approval of ``gate`` that waits in run ``run_id`` (in the frame ``scope``, if given);
    ``ApprovalRefused`` saying why there is none, or which to choose."""
    rows = [
        ApprovalState(**row._asdict())
        for row in tx.run(table.APPROVALS_OF_GATE, {"w_id": run_id, "w_gate": gate})
    ]
    of_scope = [a for a in rows if scope is None or a.scope == scope]
    waiting = [a for a in of_scope if a.waiting]
    if len(waiting) == 1:
        return waiting[0]
    if len(waiting) > 1:
        scopes = ", ".join(repr(a.scope) for a in waiting)
        raise ApprovalRefused(
            f"gate {gate!r} of run {run_id} waits in {len(waiting)} frames ({scopes}); say "
            "which with scope=... (--scope on the shell)"
        )
    if of_scope:
        decided = of_scope[-1]
        when = f"{as_utc(decided.decided_at):%Y-%m-%d %H:%M:%S} UTC" if decided.decided_at else ""
        who = f" by {decided.decided_by}" if decided.decided_by else ""
        said = f" ({decided.note})" if decided.note else ""
        raise ApprovalRefused(
            f"gate {gate!r} of run {run_id}{_in(decided.scope)} was {decided.status}{who} at "
            f"{when}{said}: a decision is final, and it was made already"
        )
    if rows:
        raise ApprovalRefused(
            f"gate {gate!r} of run {run_id} does not wait in frame {scope!r}; it waits or "
            f"waited in {', '.join(repr(a.scope) for a in rows)}"
        )
    known = [row.gate for row in tx.run(table.GATES_OF_RUN, {"w_id": run_id})]
    reached = f"its gates reached so far: {known}" if known else "it has reached no gate yet"
    raise ApprovalRefused(
        f"run {run_id} has not asked for an approval at gate {gate!r} ({reached}); "
        "`agentyard approvals` lists what waits"
    )


def _check(
    tx: Tx,
    run_id: str,
    approval: ApprovalState,
    status: ApprovalStatus,
    given: str | None,
    now: datetime,
) -> None:
    """Refuse a decision the waiting ``approval`` cannot take."""
    where = f"gate {approval.gate!r} of run {run_id}{_in(approval.scope)}"
    due = as_utc(approval.due_at)
    if due is not None and due <= now:
        raise ApprovalRefused(
            f"{where} was not decided by its due time, {due:%Y-%m-%d %H:%M:%S} UTC: its "
            f"on_timeout ({approval.on_timeout}) applies, and it can no longer be decided"
        )
    if given is not None and not approval.subject_hash.startswith(given):
        raise ApprovalRefused(
            f"{where} is to pass on what hashes to {gates.short(approval.subject_hash)}..., not "
            f"{given}...: it changed since you saw it (asked {approval.requests} time(s)); look "
            "again with `agentyard approvals`, and decide what it is now"
        )
    if status is ApprovalStatus.APPROVED and _subject_now(tx, run_id, approval) != approval.subject:
        raise ApprovalRefused(
            f"{where}: the output it follows changed since it was asked for (hash "
            f"{gates.short(approval.subject_hash)}...), so it cannot be approved; reject it, or "
            "look into what changed it"
        )


def _subject_now(tx: Tx, run_id: str, approval: ApprovalState) -> str | None:
    """What the approval's subject was taken from, as it is now (a gate's: the output of its
    source, or its frame's input). A tool call's subject is its arguments, which the tool's
    side binds to the hash when it runs the call: it is its own."""
    if approval.kind != gates.GATE:
        return approval.subject
    if approval.source_id is not None:
        for statement in (table.STEP_OUTPUT, table.NODE_RUN_OUTPUT):
            found = tx.run(statement, {"w_id": approval.source_id}).one_or_none()
            if found is not None:
                return found.output
        return None
    if approval.scope == "":
        return tx.run(table.RUN_INPUT, {"w_id": run_id}).scalar()
    params = {"w_id": run_id, "w_scope": approval.scope}
    return tx.run(table.FRAME_INPUT, params).scalar()


def _in(scope: str) -> str:
    return f" (in {describe_scope(scope)})" if scope else ""


def _person(by: object) -> str:
    if not isinstance(by, str) or not by.strip() or len(by.strip()) > MAX_BY or "\n" in by:
        raise ApprovalRefused(
            f"say who decides (by=...): a name of 1 to {MAX_BY} characters on one line, got "
            f"{by!r:.80}"
        )
    return by.strip()


def _note(note: object) -> str | None:
    if note is None:
        return None
    if not isinstance(note, str) or len(note) > MAX_NOTE:
        raise ApprovalRefused(f"a note is text of at most {MAX_NOTE} characters, got {note!r:.80}")
    return note.strip() or None


def _hash_prefix(given: object) -> str | None:
    if given is None:
        return None
    text = given.strip().lower() if isinstance(given, str) else ""
    if not gates.HASH_PREFIX_MIN <= len(text) <= 64 or any(
        c not in "0123456789abcdef" for c in text
    ):
        raise ApprovalRefused(
            f"a subject hash is {gates.HASH_PREFIX_MIN} to 64 hex characters (the start of the "
            f"hash `agentyard approvals` shows), got {given!r:.80}"
        )
    return text
