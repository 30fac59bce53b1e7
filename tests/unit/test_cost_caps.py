"""Spend caps in a workflow's life: a call that could break one is not made (fakeredis, SQLite)."""

from __future__ import annotations

import fakeredis
from sqlmodel import col, select

from orchestration import Agent, Workflow, WorkflowStatus
from orchestration.budget import Budget
from orchestration.pricing import PriceTable
from storage.budget_store import BudgetStore, Cap
from storage.db import session_scope
from storage.models import TraceRow
from tests.conftest import TeamFactory
from tests.support import run_inline
from workers.providers.base import ChatMessage, ModelRequest


def _team(inline_team: TeamFactory, budget_usd: float | None = None, **agent: object):  # type: ignore[no-untyped-def]
    agents = [
        Agent(id=a, model="offline:echo", system_prompt=f"You are the {a}.", **agent)  # type: ignore[arg-type]
        for a in ("researcher", "writer", "reviewer")
    ]
    flow = Workflow.sequence(
        "research", ["researcher", "writer", "reviewer"], budget_usd=budget_usd
    )
    return inline_team(*agents, workflows=(flow,))


def test_a_call_that_could_break_the_run_budget_is_not_made_and_the_run_keeps_what_it_has(
    inline_team: TeamFactory,
) -> None:
    # Each call may cost up to ~$0.006 (1024 output tokens at $5/M, and its input, marked as
    # data, at the dearest input rate); $0.0062 admits the first call, and the second (its
    # prompt longer, with $0.0004 spent) no longer fits.
    orc, bus = _team(inline_team, budget_usd=0.0062)

    result = run_inline(orc, bus, "research", "the telegraph")

    assert result.status is WorkflowStatus.BUDGET_EXCEEDED
    first, second = result.steps  # the third step's node never became ready: not made
    assert first.status == "succeeded" and first.output
    assert result.output == first.output  # the run keeps what the finished steps produced
    assert second.status == "failed" and second.attempt == 1  # not retried, no fallback
    assert second.error is not None and f"run:{result.id} cap" in second.error
    assert result.error is not None and "step 2 (writer) was not run" in result.error
    assert 0 < result.cost_usd <= 0.0062
    with session_scope(orc.database_url) as session:
        traces = session.exec(select(TraceRow).order_by(col(TraceRow.started_at))).all()
    assert [t.outcome for t in traces] == ["succeeded", "cost_limit_exceeded"]
    assert traces[1].cost_micro == 0 and traces[1].output is None  # the model was not called


def test_an_agent_over_its_daily_cap_is_not_called_at_all(inline_team: TeamFactory) -> None:
    orc, bus = _team(inline_team, cost_limit_usd=0.001)

    result = run_inline(orc, bus, "research", "the telegraph")

    assert result.status is WorkflowStatus.BUDGET_EXCEEDED
    assert result.output is None and result.cost_usd == 0
    assert result.steps[0].error is not None and "agent:researcher cap" in result.steps[0].error


def test_a_run_within_every_cap_finishes_and_its_holds_are_all_settled(
    inline_team: TeamFactory,
) -> None:
    orc, bus = _team(inline_team, budget_usd=1.0, cost_limit_usd=1.0)

    result = run_inline(orc, bus, "research", "the telegraph")

    assert result.status is WorkflowStatus.SUCCEEDED
    store = orc.step_runner()._budget._store  # type: ignore[attr-defined]
    assert store is not None
    assert store.reserved(f"run:{result.id}", "total") == 0
    assert store.spent(f"run:{result.id}", "total") == round(result.cost_usd * 1e6)
    assert store.spent("agent:writer", store.today()) == round(result.steps[1].cost_usd * 1e6)


def test_a_call_under_way_when_redis_loses_its_data_is_still_booked_on_its_caps() -> None:
    client = fakeredis.FakeRedis()
    store = BudgetStore(client, team="t")
    ledger = {("agent:writer", store.today()): 2_000}  # what the cost ledger holds
    budget = Budget(store, PriceTable.default(), restore=lambda: store.restore(ledger))
    caps = [Cap("agent:writer", 1_000_000, "day")]
    request = ModelRequest("claude-haiku-4-5", "", (ChatMessage("user", "hi"),), 64, 5.0)
    budget.hold("s1:1", request, caps, ttl_s=60)  # the counters were loaded on the way in

    client.flushall()  # the call is under way when Redis loses its data
    budget.settle("s1:1", 700, caps)

    # the counters came back from the ledger, which did not hold this call yet, and it was added
    assert store.spent("agent:writer", store.today()) == 2_700
