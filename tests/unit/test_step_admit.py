"""The admit stage alone: the breaker is asked first, then the call's worst case is held on its
spend caps; a refusal is handed back, not raised, and a call the breaker turns away holds no
money. After the call, the breaker hears how it went. fakeredis for the breaker and the caps."""

from __future__ import annotations

from dataclasses import dataclass

import fakeredis
import pytest

from bus.envelope import request_step
from orchestration import Agent, Settings, Workflow
from orchestration.breakers import Breakers
from orchestration.budget import Budget
from orchestration.context import model_request
from orchestration.step.admit import Admission
from orchestration.step.call import Call
from orchestration.step.claim import Attempt
from orchestration.team import Team
from storage.breaker_store import BreakerStore, Decision
from storage.budget_store import BudgetStore, Cap
from storage.errors import BreakerOpen, CostLimitExceeded, Overloaded
from storage.models import utcnow
from workers.providers.base import ModelRequest, Usage

WRITER = Agent(
    id="writer", model="offline:echo", max_tokens=200, cost_limit_usd=1.0, breaker_threshold=1
)


@dataclass
class Stage:
    admission: Admission
    budget: Budget
    budgets: BudgetStore
    breakers: BreakerStore


@pytest.fixture
def stage(unit_settings: Settings) -> Stage:
    client = fakeredis.FakeRedis()
    team = Team("unit")
    team.add_agent(WRITER)
    team.add_workflow(Workflow.sequence("w", ["writer"], daily_budget_usd=2.0))
    budgets = BudgetStore(client, team="unit")
    budgets.restore({})  # the counters are loaded (from an empty ledger)
    breakers = BreakerStore(client, team="unit")
    budget = Budget(budgets, team.prices)
    return Stage(
        Admission(team, budget, Breakers(breakers), unit_settings), budget, budgets, breakers
    )


def _attempt(budget_micro: int | None = None) -> tuple[Attempt, ModelRequest]:
    message = request_step(
        agent_id="writer",
        workflow_id="w1",
        step_id="s1",
        attempt=1,
        priority=5,
        workflow="w",
        budget_micro=budget_micro,
    )
    this = Attempt(message, "s1", 1, WRITER, "writer", None, "s1:1")
    return this, model_request(WRITER, "the telegraph", None, this.call_id)


def _run_cap(cap_micro: int) -> list[Cap]:
    return [Cap("run:w1", cap_micro, "run")]


def test_the_caps_of_a_call_are_its_agents_its_runs_and_its_workflow_types(stage: Stage) -> None:
    # Given a request for a run with a budget of its own, of a workflow type with a daily budget
    this, _ = _attempt(budget_micro=500_000)

    # When the stage names the caps the call answers to
    caps = stage.admission.caps(this.message, this.agent)

    # Then they are the agent's per day, the run's, and the workflow type's per day
    assert [(cap.scope, cap.limit_micro, cap.period) for cap in caps] == [
        ("agent:writer", 1_000_000, "day"),
        ("run:w1", 500_000, "run"),
        ("workflow:w", 2_000_000, "day"),
    ]


def test_a_call_under_its_caps_is_let_through_with_its_worst_case_held(stage: Stage) -> None:
    this, request = _attempt()

    admitted = stage.admission.admit(this, request, _run_cap(10**9))

    assert admitted is Decision.ALLOW
    assert stage.budgets.reserved("run:w1", "total") == stage.budget.worst_case_micro(request)


def test_a_call_over_a_cap_is_refused_with_the_refusal_handed_back_and_nothing_held(
    stage: Stage,
) -> None:
    this, request = _attempt()

    refusal = stage.admission.admit(this, request, _run_cap(1))

    assert isinstance(refusal, CostLimitExceeded) and refusal.scope == "run:w1"
    assert stage.budgets.reserved("run:w1", "total") == 0


def test_a_call_the_breaker_turns_away_holds_no_money(stage: Stage) -> None:
    # Given the writer's breaker opened by a provider failure
    stage.breakers.record("writer", "s0:1", False, threshold=1, window_s=60.0, reset_s=60.0)
    this, request = _attempt()

    # When a call under a cap with room for it asks to be admitted
    refusal = stage.admission.admit(this, request, _run_cap(10**9))

    # Then the breaker refuses it, and the cap was never asked
    assert isinstance(refusal, BreakerOpen)
    assert stage.budgets.reserved("run:w1", "total") == 0


def test_the_breaker_hears_of_a_provider_failure_once_the_call_is_made(stage: Stage) -> None:
    this, request = _attempt()
    admitted = stage.admission.admit(this, request, [])
    assert admitted is Decision.ALLOW
    failed = Call(request, None, Overloaded("overloaded"), Usage(), 0, utcnow(), 12.0)

    stage.admission.after_call(this, admitted, failed)

    assert stage.breakers.state("writer").state == "open"


def test_a_probe_a_cap_refuses_gives_the_probes_place_up(stage: Stage) -> None:
    # Given the writer's breaker open, with its time up: the next call is its one probe
    stage.breakers.record("writer", "s0:1", False, threshold=1, window_s=60.0, reset_s=0.0)
    this, request = _attempt()

    # When that probe's worst case does not fit its run's cap
    refusal = stage.admission.admit(this, request, _run_cap(1))

    # Then it is refused by the cap, and the next call may be the probe at once (not after the
    # refused probe's lease of the agent's timeout and the lease margin)
    assert isinstance(refusal, CostLimitExceeded)
    assert stage.breakers.acquire("writer", "s2:1", 60).decision is Decision.PROBE
