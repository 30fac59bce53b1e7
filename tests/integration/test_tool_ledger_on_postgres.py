"""The tool ledger on a real PostgreSQL: a finished call is replayed and never runs again; a
call started and not finished runs again only if that is safe (no side effects, or an idempotent
tool, with the same idempotency key), else its outcome is unknown; the model's answers are kept
once."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from storage import statements
from storage.db import migrate
from storage.executor import transaction
from storage.tool_ledger import (
    AwaitingCall,
    PlannedCall,
    ToolLedger,
    Verdict,
    calls_awaiting_approval,
)

pytestmark = pytest.mark.integration
T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def step(postgres_url: str) -> tuple[str, str]:
    """A run and one of its steps, of this test's own (the run on record as finished, so that
    no other test's sweep takes it up)."""
    migrate(postgres_url)
    run_id, step_id = str(uuid.uuid4()), str(uuid.uuid4())
    with transaction(postgres_url) as tx:
        tx.run(
            statements.INSERT_WORKFLOW,
            {
                "id": run_id,
                "team": "t",
                "name": "tools",
                "priority": 5,
                "input": "refund order 7",
                "status": "succeeded",
                "output": None,
                "error": None,
                "finished_at": None,
                "budget_micro": None,
                "cost_micro": 0,
                "created_at": T0,
                "updated_at": T0,
            },
        )
        tx.run(
            statements.INSERT_STEP,
            [{"id": step_id, "workflow_id": run_id, "position": 0, "agent_id": "clerk"}],
        )
    return run_id, step_id


def _call(step: tuple[str, str], *, side_effects: bool, idempotent: bool = False) -> PlannedCall:
    run_id, step_id = step
    return PlannedCall(
        workflow_id=run_id,
        step_id=step_id,
        turn=0,
        index=0,
        tool_use_id="toolu_1",
        tool="refund",
        arguments={"order": 7},
        side_effects=side_effects,
        idempotent=idempotent,
    )


def test_a_finished_call_is_replayed_with_its_result_and_not_run_again(
    postgres_url: str, step: tuple[str, str]
) -> None:
    ledger = ToolLedger(postgres_url)
    call = _call(step, side_effects=True)
    assert ledger.start(call, attempt=1).verdict is Verdict.RUN
    ledger.finish(call, "refunded", is_error=False, duration_ms=3.0)

    again = ledger.start(call, attempt=2)  # the attempt after a crash asks again

    assert (again.verdict, again.result, again.is_error, again.runs) == (
        Verdict.REPLAY,
        "refunded",
        False,
        1,
    )
    [recorded] = ledger.calls(step[1])
    assert (recorded.status, recorded.runs, recorded.result) == ("succeeded", 1, "refunded")


def test_a_side_effecting_call_started_and_not_finished_has_an_unknown_outcome(
    postgres_url: str, step: tuple[str, str]
) -> None:
    ledger = ToolLedger(postgres_url)
    call = _call(step, side_effects=True)
    assert ledger.start(call, attempt=1).verdict is Verdict.RUN  # and its worker died

    assert ledger.start(call, attempt=2).verdict is Verdict.UNKNOWN
    assert ledger.start(call, attempt=3).verdict is Verdict.UNKNOWN  # however often asked
    [recorded] = ledger.calls(step[1])
    assert (recorded.status, recorded.runs) == ("started", 1)


def test_an_idempotent_call_started_and_not_finished_runs_again_with_the_same_key(
    postgres_url: str, step: tuple[str, str]
) -> None:
    ledger = ToolLedger(postgres_url)
    call = _call(step, side_effects=True, idempotent=True)
    ledger.start(call, attempt=1)

    again = ledger.start(call, attempt=2)

    assert (again.verdict, again.runs) == (Verdict.RUN, 2)
    assert call.idempotency_key == f"{step[1]}:0:0"  # what the tool passes on, both times
    ledger.finish(call, "refunded", is_error=False, duration_ms=1.0)
    assert [(c.status, c.runs) for c in ledger.calls(step[1])] == [("succeeded", 2)]


def test_a_call_without_side_effects_runs_again_freely(
    postgres_url: str, step: tuple[str, str]
) -> None:
    ledger = ToolLedger(postgres_url)
    call = _call(step, side_effects=False)
    ledger.start(call, attempt=1)
    assert ledger.start(call, attempt=2).verdict is Verdict.RUN


def test_the_first_finish_stands_when_two_attempts_finish_the_same_call(
    postgres_url: str, step: tuple[str, str]
) -> None:
    ledger = ToolLedger(postgres_url)
    call = _call(step, side_effects=True, idempotent=True)
    ledger.start(call, attempt=1)
    ledger.start(call, attempt=2)  # the first attempt's worker was slow, not dead

    first = ledger.finish(call, "refund 1", is_error=False, duration_ms=1.0)
    second = ledger.finish(call, "refund 2", is_error=False, duration_ms=1.0)

    assert first.result == second.result == "refund 1"  # both give the model the same


def test_a_models_answer_is_kept_once_in_order(postgres_url: str, step: tuple[str, str]) -> None:
    ledger = ToolLedger(postgres_url)
    run_id, step_id = step
    first = [{"type": "tool_use", "id": "toolu_1", "name": "refund", "input": {"order": 7}}]
    with transaction(postgres_url) as tx:
        ledger.keep_turn(tx, (run_id, step_id, 1), 1, "clerk", [{"type": "text", "text": "b"}])
        ledger.keep_turn(tx, (run_id, step_id, 0), 1, "clerk", first)
        ledger.keep_turn(tx, (run_id, step_id, 0), 2, "clerk", [{"type": "text", "text": "x"}])

    assert ledger.turns(step_id) == [first, [{"type": "text", "text": "b"}]]


def test_a_call_awaiting_approval_is_listed_not_run_until_an_attempt_starts_it(
    postgres_url: str, step: tuple[str, str]
) -> None:
    ledger = ToolLedger(postgres_url)
    call = _call(step, side_effects=True)
    ledger.await_approval(call, attempt=1)
    ledger.await_approval(call, attempt=1)  # the same attempt again: still one row
    with transaction(postgres_url) as tx:
        assert calls_awaiting_approval(tx, step[1]) == [
            AwaitingCall(turn=0, index=0, tool="refund", arguments={"order": 7})
        ]
    [waiting] = ledger.calls(step[1])
    assert (waiting.status, waiting.result) == ("awaiting_approval", None)

    started = ledger.start(call, attempt=2)  # approved: the attempt after the decision runs it

    assert (started.verdict, started.runs) == (Verdict.RUN, 1)
    with transaction(postgres_url) as tx:
        assert calls_awaiting_approval(tx, step[1]) == []
    # started and not finished, with side effects: never run again, as any call
    assert ledger.start(call, attempt=3).verdict is Verdict.UNKNOWN


def test_a_refused_call_awaiting_approval_is_finished_with_the_refusal_and_replayed(
    postgres_url: str, step: tuple[str, str]
) -> None:
    ledger = ToolLedger(postgres_url)
    ledger.await_approval(_call(step, side_effects=True), attempt=1)
    refused = _call(step, side_effects=False)  # what is not run has no side effects

    assert ledger.start(refused, attempt=2).verdict is Verdict.RUN
    ledger.finish(refused, "not run: bob rejected this call", is_error=True, duration_ms=0.0)

    again = ledger.start(refused, attempt=3)
    assert (again.verdict, again.result, again.is_error) == (
        Verdict.REPLAY,
        "not run: bob rejected this call",
        True,
    )
