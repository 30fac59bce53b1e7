"""Many workflows at once against one agent's spend cap, on real worker processes."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import func, select

from orchestration import Orchestrator, WorkflowStatus
from orchestration.pricing import usd_to_micro
from storage import statements
from storage.db import session_scope
from tests.system.conftest import TEAM, agentyard, started_workers

pytestmark = [pytest.mark.integration, pytest.mark.system]

# A writer call costs ~$0.0003 and may cost up to ~$0.0056 (its worst case, held while it runs):
# the cap admits about fifty of the eighty runs' writer calls, a few of them at a time.
CAP_USD = 0.02
RUNS = 80


@pytest.fixture
def extra_env() -> dict[str, str]:
    # Refused calls whose room was only held by calls under way are retried (by the sweep).
    return {
        "SAMPLE_TEAM_NAME": "capped",  # its own cost ledger: the test database is shared
        "SAMPLE_TEAM_WRITER_CAP_USD": str(CAP_USD),
        "AGENTYARD_SWEEP_INTERVAL_S": "1",
    }


def test_parallel_workflows_on_two_worker_processes_never_overshoot_an_agent_cap(
    tmp_path: Path, env: dict[str, str], orc: Orchestrator
) -> None:
    specs = [
        ("--coordinator", "--concurrency", "4"),
        ("--all-agents", "--concurrency", "8"),
        ("--all-agents", "--concurrency", "8"),
    ]
    with started_workers(orc, env, tmp_path, *specs):
        runs = [orc.submit("research", f"topic {n}") for n in range(RUNS)]
        deadline = time.monotonic() + 120
        results = [run.wait(timeout=max(1.0, deadline - time.monotonic())) for run in runs]

    statuses = Counter(result.status for result in results)
    assert set(statuses) <= {WorkflowStatus.SUCCEEDED, WorkflowStatus.BUDGET_EXCEEDED}
    assert statuses[WorkflowStatus.SUCCEEDED] > 0 and statuses[WorkflowStatus.BUDGET_EXCEEDED] > 0
    ledger = statements.ledger
    with session_scope(orc.database_url) as session:
        # SUM of a BIGINT column is NUMERIC on PostgreSQL: a Decimal, made an int here.
        spent = int(
            session.execute(
                select(func.sum(ledger.c.cost_micro)).where(
                    ledger.c.team == orc.name, ledger.c.agent_id == "writer"
                )
            ).scalar_one()
            or 0
        )
    store = orc.budget_store()
    assert store is not None
    print(
        f"\n{RUNS} runs: {statuses[WorkflowStatus.SUCCEEDED]} succeeded, "
        f"{statuses[WorkflowStatus.BUDGET_EXCEEDED]} budget_exceeded; the writer spent {spent} "
        f"of a {usd_to_micro(CAP_USD)} micro-dollar cap"
    )
    assert 0 < spent <= usd_to_micro(CAP_USD)  # never over the cap
    assert store.spent("agent:writer", store.today()) == spent  # Redis and the ledger agree
    assert store.holds() == []  # every hold settled

    shown = agentyard(env, "costs", TEAM, "--days", "1")
    assert shown.returncode == 0, shown.stderr
    [writer] = [
        line.split()
        for line in shown.stdout.splitlines()
        if " agent " in f" {line} " and " writer " in line
    ]
    calls = statuses[WorkflowStatus.SUCCEEDED]  # each succeeded run made one writer call
    assert writer[1:5] == ["agent", "writer", str(calls), "call(s)"], shown.stdout
    assert writer[5] == f"${spent / 1e6:.6f}"
    assert "reserved now: $0.000000 in 0 open hold(s)" in shown.stdout
    rebuilt = agentyard(env, "costs", "rebuild", TEAM)
    assert rebuilt.returncode == 0 and "raised 0 spend counter(s)" in rebuilt.stdout
