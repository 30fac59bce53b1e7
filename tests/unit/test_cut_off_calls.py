"""A call cut off by a dead worker is booked at its worst case, as spent but unknown, in the cost
ledger and on the spend caps alike; a worker that was only slow puts the real cost in its place;
and whatever Redis loses, its counters never fall below the ledger.
In-process: the real coordinator, step runner, sweep and bus audit, SQLite and fakeredis."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update
from sqlmodel import col, select

from orchestration import Agent, Orchestrator, Workflow, WorkflowStatus, cli
from orchestration.costs import rebuild
from storage.db import session_scope
from storage.models import CostLedgerRow, StepRow, utcnow
from tests.conftest import TeamFactory
from tests.support import InlineBus, drain
from tests.tool_examples import search_docs


def _team(inline_team: TeamFactory) -> tuple[Orchestrator, InlineBus]:
    return inline_team(
        Agent(id="writer", model="offline:echo", max_tokens=200, cost_limit_usd=1.0),
        workflows=(Workflow.sequence("w", ["writer"], budget_usd=0.5),),
    )


def _killed_mid_call(orc: Orchestrator, bus: InlineBus) -> int:
    """What a worker killed mid-call leaves: the first queued request's attempt claimed and its
    worst case held on the caps, nothing settled or recorded. Returns that worst case."""
    _, message = bus.queue.popleft()
    runner = orc.step_runner()
    agent = orc.team.agent("writer")
    claimed = runner._claim(message, str(message.payload["step_id"]), 1, agent)
    assert claimed is not None
    this, request = claimed
    runner._budget.hold(this.call_id, request, runner._caps(message, agent), ttl_s=600)
    return runner._budget.worst_case_micro(request)


def _lease_runs_out(orc: Orchestrator) -> None:
    with session_scope(orc.database_url) as session:
        session.exec(update(StepRow).values(lease_until=utcnow() - timedelta(seconds=1)))


def _ledger(orc: Orchestrator) -> list[tuple[int, int, bool]]:
    with session_scope(orc.database_url) as session:
        rows = session.exec(
            select(CostLedgerRow.attempt, CostLedgerRow.cost_micro, CostLedgerRow.unknown).order_by(
                col(CostLedgerRow.attempt)
            )
        ).all()
    return [(attempt, cost, bool(unknown)) for attempt, cost, unknown in rows]


def test_a_call_cut_off_by_a_kill_is_booked_at_its_worst_case_as_unknown_in_ledger_and_caps(
    inline_team: TeamFactory, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a worker that claimed a step, held its worst case, called the model, and was killed
    orc, bus = _team(inline_team)
    run = orc.submit("w", "the telegraph")
    worst = _killed_mid_call(orc, bus)

    # When its lease runs out and the sweep gives the attempt up
    _lease_runs_out(orc)
    assert orc.maintenance().sweep()["expired_leases"] == 1

    # Then the call is in the ledger at its worst case, unknown, and the caps say the same
    assert _ledger(orc) == [(1, worst, True)]
    store = orc.budget_store()
    assert store is not None
    assert store.spent("agent:writer", store.today()) == worst
    assert store.spent(f"run:{run.id}", "total") == worst
    assert store.reserved("agent:writer", store.today()) == 0

    # ... the run goes on to its next attempt
    drain(orc, bus)
    assert run.result().status is WorkflowStatus.SUCCEEDED
    ledger = _ledger(orc)
    assert ledger[0] == (1, worst, True) and ledger[1][0] == 2 and not ledger[1][2]
    assert store.spent("agent:writer", store.today()) == worst + ledger[1][1]

    # ... and `agentyard costs` shows the unknown call, at most its worst case
    monkeypatch.setattr("orchestration.loader.load_orchestrator", lambda _spec: orc)
    assert cli.main(["costs", "unit:orc"]) == 0
    shown = capsys.readouterr().out
    assert f"of which 1 cut off by a dead worker: unknown, at most ${worst / 1e6:.6f}" in shown


def test_counters_rebuilt_from_the_ledger_keep_the_cut_off_calls(
    inline_team: TeamFactory,
) -> None:
    orc, bus = _team(inline_team)
    orc.submit("w", "the telegraph")
    _killed_mid_call(orc, bus)
    _lease_runs_out(orc)
    orc.maintenance().sweep()
    store = orc.budget_store()
    assert store is not None
    booked = store.spent("agent:writer", store.today())

    # When Redis loses its data and the counters are rebuilt from the ledger
    orc._redis.flushall()  # type: ignore[union-attr]
    rebuild(orc.database_url, orc.team, store)

    # Then the cut-off call is on the caps as before
    assert store.spent("agent:writer", store.today()) == booked > 0


def test_a_worker_that_was_only_slow_replaces_the_unknown_cost_with_the_real_one(
    inline_team: TeamFactory,
) -> None:
    # Given a call that outlives its lease: the sweep books it as unknown while it runs
    orc, bus = _team(inline_team)
    run = orc.submit("w", "the telegraph")
    _, late = bus.queue.popleft()
    runner = orc.step_runner()
    call = runner._call
    swept: list[int] = []

    def slow_call(agent, request):  # type: ignore[no-untyped-def]
        outcome = call(agent, request)
        _lease_runs_out(orc)
        swept.append(orc.maintenance().sweep()["expired_leases"])
        return outcome

    runner._call = slow_call  # type: ignore[method-assign]
    runner.run(late)
    runner._call = call  # type: ignore[method-assign]
    drain(orc, bus)

    # Then its row in the ledger is its real cost, known, and the counters match the ledger
    assert swept == [1] and run.result().status is WorkflowStatus.SUCCEEDED
    ledger = _ledger(orc)
    assert [unknown for _, _, unknown in ledger] == [False, False]
    store = orc.budget_store()
    assert store is not None
    assert store.spent(f"run:{run.id}", "total") == sum(cost for _, cost, _ in ledger)
    assert store.spent("agent:writer", store.today()) == sum(cost for _, cost, _ in ledger)


def test_redis_losing_its_data_while_a_call_is_recorded_never_leaves_the_counters_below_the_ledger(
    inline_team: TeamFactory,
) -> None:
    # Given a call whose record is being written when Redis loses its data, and another worker
    # restores the counters from the ledger at that very moment
    orc, bus = _team(inline_team)
    run = orc.submit("w", "the telegraph")
    runner = orc.step_runner()
    store = orc.budget_store()
    assert store is not None
    record = runner._record_and_decide_once

    def flushed_meanwhile(this, call):  # type: ignore[no-untyped-def]
        orc._redis.flushall()  # type: ignore[union-attr]
        rebuild(orc.database_url, orc.team, store)
        return record(this, call)

    runner._record_and_decide_once = flushed_meanwhile  # type: ignore[method-assign]
    _, message = bus.queue.popleft()
    runner.run(message)
    runner._record_and_decide_once = record  # type: ignore[method-assign]

    # Then the run's counter holds at least what the ledger says it spent
    ledger = _ledger(orc)
    assert len(ledger) == 1 and ledger[0][1] > 0
    assert store.spent(f"run:{run.id}", "total") >= ledger[0][1]
    assert store.spent("agent:writer", store.today()) >= ledger[0][1]


def test_redis_losing_its_data_while_the_sweep_books_a_cut_off_call_leaves_the_counters_whole(
    inline_team: TeamFactory,
) -> None:
    # Given a call cut off by a kill, and Redis losing its data (the counters restored from the
    # ledger by another worker) just after the sweep booked it, before its ledger row is written
    orc, bus = _team(inline_team)
    run = orc.submit("w", "the telegraph")
    worst = _killed_mid_call(orc, bus)
    _lease_runs_out(orc)
    sweep = orc.maintenance()
    store = orc.budget_store()
    assert store is not None and sweep._cut_off is not None
    book = sweep._cut_off.book

    def booked_then_flushed(call):  # type: ignore[no-untyped-def]
        booking = book(call)
        orc._redis.flushall()  # type: ignore[union-attr]
        rebuild(orc.database_url, orc.team, store)
        return booking

    sweep._cut_off.book = booked_then_flushed  # type: ignore[method-assign]
    assert sweep.sweep()["expired_leases"] == 1

    # Then the counters have the cut-off call as the ledger does
    assert _ledger(orc) == [(1, worst, True)]
    assert store.spent(f"run:{run.id}", "total") >= worst
    assert store.spent("agent:writer", store.today()) >= worst


class _Killed(BaseException):
    """The worker dies here: nothing after this point runs."""


def test_a_tool_loop_cut_off_mid_turn_books_that_turns_hold_not_the_attempts_first(
    inline_team: TeamFactory,
) -> None:
    # Given a step whose first answer asked for a tool (recorded, settled), and whose worker
    # held the second answer's worst case, called the model and was killed
    orc, bus = inline_team(
        Agent(
            id="writer",
            model="offline:echo",
            max_tokens=200,
            cost_limit_usd=1.0,
            tools=[search_docs],
        ),
        workflows=(Workflow.sequence("w", ["writer"], budget_usd=0.5),),
    )
    run = orc.submit("w", "the telegraph")
    _, message = bus.queue.popleft()
    runner = orc.step_runner()
    call = runner._call
    calls = 0

    def killed_on_the_second_answer(agent, request):  # type: ignore[no-untyped-def]
        nonlocal calls
        calls += 1
        if calls == 2:
            raise _Killed
        return call(agent, request)

    runner._call = killed_on_the_second_answer  # type: ignore[method-assign]
    with pytest.raises(_Killed):
        runner.run(message)
    store = orc.budget_store()
    assert store is not None
    [(hold_id, held)] = store.holds()
    step_id = str(message.payload["step_id"])
    assert hold_id == f"{step_id}:1:1"
    [(_, first, _)] = _ledger(orc)

    # When its lease runs out and the sweep gives the attempt up
    _lease_runs_out(orc)
    assert orc.maintenance().sweep()["expired_leases"] == 1

    # Then the turn under way is what is booked, at what it held, in the ledger and on the caps
    assert store.holds() == []
    with session_scope(orc.database_url) as session:
        booked = session.exec(
            select(CostLedgerRow.id, CostLedgerRow.cost_micro, CostLedgerRow.unknown).where(
                col(CostLedgerRow.unknown)
            )
        ).all()
    assert [(row_id, cost) for row_id, cost, _ in booked] == [(f"{step_id}:1:1", held)]
    assert store.spent(f"run:{run.id}", "total") == first + held
    assert store.reserved("agent:writer", store.today()) == 0
