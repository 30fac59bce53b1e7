"""The tool ledger: every tool call of a step's tool loop, in PostgreSQL, so that none with side
effects ever runs twice, whatever crashes.

A call is on record as started (``start``) before it runs, and as finished, with its result
(``finish``), before the model sees the result. When an attempt of the step starts again (its
worker was killed, its request was delivered again), it asks for each call again, and:

- a finished call is replayed: its result is read from here, the tool does not run;
- a call started but not finished (its worker died while it ran, or before it recorded the end)
  is run again only if that is safe: its tool has no side effects, or is idempotent (it runs
  with the same idempotency key, for the outside system to dedupe); otherwise its outcome is
  unknown, and the step fails (``ToolOutcomeUnknown``) for a person to decide;
- a call never started runs;
- a call that needs a person's approval first waits on record (``await_approval``), not run,
  until an attempt after the decision starts it (or gives the model the refusal).

The model's answers that asked for tools are kept too (``keep_turn``), before their tools run,
so that an attempt that starts again reads them rather than asking the model anew.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Table, bindparam, func, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from storage.executor import Tx, transaction
from storage.models import ToolCallRow, ToolCallStatus, ToolTurnRow, new_id, utcnow

_turns: Table = ToolTurnRow.__table__  # type: ignore[attr-defined]
_calls: Table = ToolCallRow.__table__  # type: ignore[attr-defined]

_TURNS_OF_STEP = (
    select(_turns.c.turn, _turns.c.content)
    .where(_turns.c.step_id == bindparam("w_step"))
    .order_by(_turns.c.turn)
)
_TURNS_KEPT = (
    select(func.count()).select_from(_turns).where(_turns.c.step_id == bindparam("w_step"))
)
_KEEP_TURN = {
    "postgresql": postgresql_insert(_turns).on_conflict_do_nothing(),
    "sqlite": sqlite_insert(_turns).on_conflict_do_nothing(),
}
_START = {
    "postgresql": postgresql_insert(_calls).on_conflict_do_nothing().returning(_calls.c.id),
    "sqlite": sqlite_insert(_calls).on_conflict_do_nothing().returning(_calls.c.id),
}
_CALL = select(_calls).where(
    _calls.c.step_id == bindparam("w_step"),
    _calls.c.turn == bindparam("w_turn"),
    _calls.c.index == bindparam("w_index"),
)
_CALLS_OF_STEP = select(_calls).where(_calls.c.step_id == bindparam("w_step"))
_AWAITING_OF_STEP = (
    select(_calls.c.turn, _calls.c.index, _calls.c.tool, _calls.c.arguments)
    .where(
        _calls.c.step_id == bindparam("w_step"),
        _calls.c.status == ToolCallStatus.AWAITING_APPROVAL.value,
    )
    .order_by(_calls.c.turn, _calls.c.index)
)
# awaiting approval -> started: it runs (or is refused) for the first time
_START_APPROVED = (
    update(_calls)
    .where(
        _calls.c.id == bindparam("w_id"),
        _calls.c.status == ToolCallStatus.AWAITING_APPROVAL.value,
    )
    .values(
        status=ToolCallStatus.STARTED.value,
        side_effects=bindparam("side_effects"),
        idempotent=bindparam("idempotent"),
        attempt=bindparam("attempt"),
        started_at=bindparam("started_at"),
    )
)
_START_AGAIN = (
    update(_calls)
    .where(_calls.c.id == bindparam("w_id"), _calls.c.status == ToolCallStatus.STARTED.value)
    .values(
        runs=_calls.c.runs + 1, attempt=bindparam("attempt"), started_at=bindparam("started_at")
    )
)
_FINISH = (
    update(_calls)
    .where(
        _calls.c.step_id == bindparam("w_step"),
        _calls.c.turn == bindparam("w_turn"),
        _calls.c.index == bindparam("w_index"),
        _calls.c.status == ToolCallStatus.STARTED.value,
    )
    .values(
        status=bindparam("status"),
        result=bindparam("result"),
        is_error=bindparam("is_error"),
        finished_at=bindparam("finished_at"),
        duration_ms=bindparam("duration_ms"),
    )
)


@dataclass(frozen=True, slots=True)
class PlannedCall:
    """A tool call the model asked for, as the ledger keys it: the ``index``-th call of the
    step's answer ``turn``."""

    workflow_id: str
    step_id: str
    turn: int
    index: int
    tool_use_id: str
    tool: str
    arguments: dict[str, Any]
    side_effects: bool
    idempotent: bool

    @property
    def idempotency_key(self) -> str:
        """The same for every attempt of the step: ``<step id>:<turn>:<index>``."""
        return f"{self.step_id}:{self.turn}:{self.index}"


class Verdict(StrEnum):
    RUN = "run"  # not run before, or safe to run again: run it, then ``finish``
    REPLAY = "replay"  # it finished: use ``result``, do not run it
    UNKNOWN = "unknown"  # it started and may have done its work: do not run it


@dataclass(frozen=True, slots=True)
class Started:
    """What the ledger says to do with a call: run it (``runs``: for the how-manyth time),
    replay its result, or stop, its outcome unknown."""

    verdict: Verdict
    runs: int = 1
    result: str | None = None
    is_error: bool = False


@dataclass(frozen=True, slots=True)
class AwaitingCall:
    """A call that waits for a person's approval: what they are asked to approve."""

    turn: int
    index: int
    tool: str
    arguments: dict[str, Any]


@dataclass(frozen=True, slots=True)
class RecordedCall:
    """A call on the ledger, as a step's result lists it."""

    turn: int
    index: int
    tool: str
    arguments: dict[str, Any]
    status: str
    result: str | None
    is_error: bool
    runs: int
    started_at: datetime
    duration_ms: float | None


class ToolLedger:
    def __init__(self, database_url: str) -> None:
        self._url = database_url
        dialect = "sqlite" if database_url.startswith("sqlite") else "postgresql"
        self._keep_turn = _KEEP_TURN[dialect]
        self._start = _START[dialect]

    # -- the model's answers -----------------------------------------------------------------------

    def keep_turn(
        self,
        tx: Tx,
        planned: tuple[str, str, int],
        attempt: int,
        agent_id: str,
        content: Sequence[dict[str, Any]],
    ) -> None:
        """Keep the answer ``turn`` of a step (``planned``: workflow id, step id, turn), in the
        caller's transaction; one kept already stays (the first answer is the one its tools
        ran for)."""
        workflow_id, step_id, turn = planned
        tx.run(
            self._keep_turn,
            {
                "id": new_id(),
                "workflow_id": workflow_id,
                "step_id": step_id,
                "turn": turn,
                "attempt": attempt,
                "agent_id": agent_id,
                "content": list(content),
                "created_at": utcnow(),
            },
        )

    def turns(self, step_id: str) -> list[list[dict[str, Any]]]:
        """The step's answers that asked for tools, in order: the content of each."""
        with transaction(self._url) as tx:
            rows = tx.run(_TURNS_OF_STEP, {"w_step": step_id}).rows
        return [list(row.content) for row in rows]

    def turns_kept(self, step_id: str) -> int:
        """How many of the step's answers are kept: the next is the turn a call under way
        is for."""
        with transaction(self._url) as tx:
            return int(tx.run(_TURNS_KEPT, {"w_step": step_id}).scalar() or 0)

    # -- the calls ---------------------------------------------------------------------------------

    def start(self, call: PlannedCall, attempt: int) -> Started:
        """Put ``call`` on record as started, or say what became of it before: see the module
        docstring. In a transaction of its own, committed before the tool runs."""
        now = utcnow()
        with transaction(self._url) as tx:
            inserted = tx.run(self._start, _new_row(call, ToolCallStatus.STARTED, attempt, now))
            if inserted.rows:
                return Started(Verdict.RUN)
            row = _row(tx, call)
            if row.status == ToolCallStatus.AWAITING_APPROVAL.value:
                params = {
                    "w_id": row.id,
                    "side_effects": call.side_effects,
                    "idempotent": call.idempotent,
                    "attempt": attempt,
                    "started_at": now,
                }
                if tx.run(_START_APPROVED, params).rowcount:
                    return Started(Verdict.RUN)
                # started meanwhile by another attempt: it is that attempt's, as any started call
                row = _row(tx, call)
            if row.status != ToolCallStatus.STARTED.value:
                return Started(Verdict.REPLAY, row.runs, row.result, row.is_error)
            if row.side_effects and not row.idempotent:
                return Started(Verdict.UNKNOWN, row.runs)
            again = tx.run(_START_AGAIN, {"w_id": row.id, "attempt": attempt, "started_at": now})
            if again.rowcount == 0:  # finished meanwhile, by the attempt that started it
                return self._finished(tx, call)
            return Started(Verdict.RUN, row.runs + 1)

    def await_approval(self, call: PlannedCall, attempt: int) -> None:
        """Put ``call`` on record as waiting for a person's approval, not run (a call on record
        already stays as it is)."""
        with transaction(self._url) as tx:
            tx.run(self._start, _new_row(call, ToolCallStatus.AWAITING_APPROVAL, attempt, utcnow()))

    def finish(self, call: PlannedCall, result: str, is_error: bool, duration_ms: float) -> Started:
        """Record how ``call`` ended, before the model sees it. If it was finished already (by
        an earlier attempt that ran it again, say), that result stands: the one returned is the
        one to give the model."""
        with transaction(self._url) as tx:
            done = tx.run(
                _FINISH,
                {
                    "w_step": call.step_id,
                    "w_turn": call.turn,
                    "w_index": call.index,
                    "status": (
                        ToolCallStatus.FAILED.value if is_error else ToolCallStatus.SUCCEEDED.value
                    ),
                    "result": result,
                    "is_error": is_error,
                    "finished_at": utcnow(),
                    "duration_ms": round(duration_ms, 3),
                },
            )
            if done.rowcount:
                return Started(Verdict.REPLAY, result=result, is_error=is_error)
            return self._finished(tx, call)

    def calls(self, step_id: str) -> list[RecordedCall]:
        """Every tool call of the step, in the order the model asked for them."""
        with transaction(self._url) as tx:
            rows = tx.run(_CALLS_OF_STEP, {"w_step": step_id}).rows
        return [
            RecordedCall(
                r.turn,
                r.index,
                r.tool,
                dict(r.arguments),
                r.status,
                r.result,
                r.is_error,
                r.runs,
                r.started_at,
                r.duration_ms,
            )
            for r in sorted(rows, key=lambda r: (r.turn, r.index))
        ]

    @staticmethod
    def _finished(tx: Tx, call: PlannedCall) -> Started:
        row = _row(tx, call)
        return Started(Verdict.REPLAY, row.runs, row.result, row.is_error)


def _row(tx: Tx, call: PlannedCall) -> Any:
    """The ledger's row of ``call`` (there is one: the caller inserted it, or found it there)."""
    params = {"w_step": call.step_id, "w_turn": call.turn, "w_index": call.index}
    return tx.run(_CALL, params).one_or_none()


def calls_awaiting_approval(tx: Tx, step_id: str) -> list[AwaitingCall]:
    """The step's calls that wait for a person's approval, in the order the model asked for
    them, read in the caller's transaction (the coordinator's, which asks for the approvals)."""
    rows = tx.run(_AWAITING_OF_STEP, {"w_step": step_id}).rows
    return [AwaitingCall(r.turn, r.index, r.tool, dict(r.arguments)) for r in rows]


def _new_row(
    call: PlannedCall, status: ToolCallStatus, attempt: int, now: datetime
) -> dict[str, Any]:
    return {
        "id": new_id(),
        "workflow_id": call.workflow_id,
        "step_id": call.step_id,
        "turn": call.turn,
        "index": call.index,
        "tool_use_id": call.tool_use_id,
        "tool": call.tool,
        "arguments": call.arguments,
        "idempotency_key": call.idempotency_key,
        "side_effects": call.side_effects,
        "idempotent": call.idempotent,
        "status": status.value,
        "runs": 1,
        "result": None,
        "is_error": False,
        "attempt": attempt,
        "started_at": now,
        "finished_at": None,
        "duration_ms": None,
    }
