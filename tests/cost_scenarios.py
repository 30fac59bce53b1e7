"""A scenario the unit tests (fakeredis, SQLite) and the integration tests (real Redis and
PostgreSQL) both run: Redis loses its spend counters, the next capped call has them restored
from the ledger before it holds anything, and the cap still holds."""

from __future__ import annotations

from orchestration import Agent, Orchestrator, Workflow, WorkflowStatus
from orchestration.costs import rebuild, report
from storage.models import day_of, utcnow
from tests.support import InlineBus, run_inline

# Each call may cost up to ~$0.0052 and costs ~$0.0003: about three fit under $0.006 a day.
CAP_USD = 0.006


def register(orc: Orchestrator) -> None:
    orc.register_agent(Agent(id="writer", model="offline:echo", cost_limit_usd=CAP_USD))
    orc.register_workflow(Workflow.sequence("solo", ["writer"]))


def caps_hold_after_redis_loses_its_counters(orc: Orchestrator, bus: InlineBus) -> None:
    store = orc.budget_store()
    assert store is not None
    runs = 0
    while run_inline(orc, bus, "solo", f"topic {runs}").status is WorkflowStatus.SUCCEEDED:
        runs += 1
        assert runs < 50, "the cap never refused a call"
    today = store.today()
    spent = store.spent("agent:writer", today)
    assert runs >= 1 and 0 < spent <= CAP_USD * 1e6

    for key in store._client.scan_iter(match=f"{store.prefix}*"):  # Redis loses its data
        store._client.delete(key)
    assert store.spent("agent:writer", today) == 0

    # The next call finds no counters, has them restored from the ledger, and is refused.
    refused = run_inline(orc, bus, "solo", "one more")
    assert refused.status is WorkflowStatus.BUDGET_EXCEEDED  # the cap still holds
    assert store.spent("agent:writer", today) == spent
    assert rebuild(orc.database_url, orc.team, store) == 0  # nothing lower than the ledger now

    costs = report(orc.database_url, orc.name, days=1, store=store)
    [agent] = [row for row in costs.spend if row.kind == "agent"]
    assert (agent.name, agent.calls, agent.cost_micro) == ("writer", runs, spent)
    assert agent.day.toordinal() - 719163 == day_of(utcnow())  # 719163: 1970-01-01
    assert costs.held == []
