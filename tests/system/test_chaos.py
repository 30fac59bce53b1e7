"""Chaos: 200 three-step workflows on real worker processes (two coordinators, two agent workers,
no beat) while a worker is SIGKILLed every few seconds (and started again), and Redis loses all
its data once, mid-run. It runs with the queues on Redis (the flush loses them too) and on
RabbitMQ (the flush loses the shared state only).

What must hold, each checked against a record the other side keeps:
- every workflow succeeds;
- the model is called exactly once per successful step attempt, and no attempt reaches it twice
  (the stub server counts the calls it answered for each ``step:attempt``);
- every call the stub answered is in the cost ledger: recorded by its worker, or booked at its
  worst case (unknown) by the sweep that gave its attempt up after a kill;
- no breaker turned a call away: the provider never failed, and the kills are not its failures;
- no spend cap is passed (the cost ledger against each cap; the Redis counters, rebuilt from the
  ledger after the flush, against the same caps);
- no message is lost: every request the bus recorded was delivered, or the sweep gave its attempt
  up and dispatched the next one.

The test gives up after ``FINISH_WITHIN_S``, well within its pytest timeout, and then says what it
saw: how many runs finished, the kills, the breakers, and the stuck runs with their last step.
Run it alone with ``make test-chaos`` (``pytest -m chaos``). It prints its counts.
"""

from __future__ import annotations

import random
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from sqlalchemy import func
from sqlmodel import col, select

from bus.brokers import broker_for
from orchestration import Orchestrator, WorkflowStatus
from orchestration.pricing import usd_to_micro
from storage.db import session_scope
from storage.embedded import EmbeddedRedis
from storage.models import CostLedgerRow, MessageRow, StepRow, TraceRow, WorkflowRow
from tests.system.conftest import ON_BOTH_BROKERS, Fleet, finished_runs, stub_env
from workers.processes import wait_for_workers
from workers.stub_anthropic import StubAnthropicServer

pytestmark = [
    pytest.mark.integration,
    pytest.mark.system,
    pytest.mark.chaos,
    pytest.mark.timeout(600),  # the test's own limit, FINISH_WITHIN_S, comes well before it
]

WORKFLOWS = 200
STEPS = 3
# A worker is killed 2-4 s after the last kill, or sooner once another KILL_EVERY_FINISHED
# workflows have finished, so that a fast machine sees as many kills as a slow one.
KILL_EVERY_S = (2.0, 4.0)
KILL_EVERY_FINISHED = 20
# Who is killed, one draw each time: agent workers die twice as often as coordinators.
KILLED = ("agents-a", "agents-b", "agents-a", "agents-b", "coordinator-a", "coordinator-b")
FLUSH_AFTER_FINISHED = 60  # Redis loses its data once this many workflows have finished
AGENT_CAP_USD = 0.5  # each agent's daily cap; the run is expected to spend well under it
RUN_BUDGET_USD = 0.02  # each run's cap: three calls and a few retries fit
FINISH_WITHIN_S = 420  # then the test says what it saw (the pytest timeout is 600 s)
SEED = 20261124


@pytest.fixture
def private_redis() -> Iterator[EmbeddedRedis]:
    """A Redis of this test's own: flushing it cannot touch another test's keys."""
    with EmbeddedRedis() as server:
        yield server


@pytest.fixture
def stub() -> Iterator[StubAnthropicServer]:
    with StubAnthropicServer(latency_s=0.25) as server:  # long enough for kills to land mid-call
        yield server


@pytest.fixture
def extra_env(private_redis: EmbeddedRedis, stub: StubAnthropicServer) -> dict[str, str]:
    return {
        **stub_env(stub),
        "AGENTYARD_REDIS_URL": private_redis.url,
        "SAMPLE_TEAM_NAME": f"chaos{uuid.uuid4().hex[:8]}",
        "SAMPLE_TEAM_MAX_TOKENS": "64",
        "SAMPLE_TEAM_MAX_RETRIES": "8",
        "SAMPLE_TEAM_TIMEOUT_S": "3",
        "SAMPLE_TEAM_AGENT_CAP_USD": str(AGENT_CAP_USD),
        "SAMPLE_TEAM_RUN_BUDGET_USD": str(RUN_BUDGET_USD),
        "AGENTYARD_LOG_LEVEL": "WARNING",
        "AGENTYARD_LEASE_MARGIN_S": "1",
        "AGENTYARD_SWEEP_INTERVAL_S": "0.5",
        "AGENTYARD_VISIBILITY_TIMEOUT_S": "8",
        "AGENTYARD_TASK_TIME_LIMIT_S": "6",
        "AGENTYARD_LOST_REQUEST_AFTER_S": "3",
    }


def _diagnosis(
    orc: Orchestrator, ids: list[str], fleet: Fleet, finished: int, elapsed: float
) -> str:
    """What a reader needs when the runs did not all finish: counts, kills, the breakers, and
    the stuck runs with their last step."""
    with session_scope(orc.database_url) as session:
        statuses = Counter(
            session.exec(select(WorkflowRow.status).where(col(WorkflowRow.id).in_(ids))).all()
        )
        stuck = session.exec(
            select(WorkflowRow.id)
            .where(col(WorkflowRow.id).in_(ids), col(WorkflowRow.finished_at).is_(None))
            .limit(5)
        ).all()
        last_steps = []
        for run_id in stuck:
            step = session.exec(
                select(StepRow)
                .where(StepRow.workflow_id == run_id, StepRow.status != "succeeded")
                .order_by(col(StepRow.position))
                .limit(1)
            ).first()
            if step is not None:
                last_steps.append(
                    f"{run_id}: step {step.position + 1} ({step.ran_by or step.agent_id}) "
                    f"{step.status} at attempt {step.attempt}, due {step.due_at}, lease "
                    f"{step.lease_until}, last error {step.error_kind}: {step.error}"
                )
        refused = session.exec(
            select(TraceRow.agent_id, func.count())
            .where(col(TraceRow.workflow_id).in_(ids), TraceRow.outcome == "breaker_open")
            .group_by(col(TraceRow.agent_id))
        ).all()
    breakers = orc.breaker_store()
    states = (
        {b.agent: (b.state, b.opened) for b in breakers.states(sorted(orc.team.agents))}
        if breakers is not None
        else {}
    )
    return "\n".join(
        [
            f"only {finished} of {len(ids)} workflows had finished when the test gave up after "
            f"{elapsed:.0f}s",
            f"statuses now, the workers stopped {dict(statuses)}; kills {dict(fleet.kills)}",
            f"breakers now (state, times opened) {states}; calls they turned away {dict(refused)}",
            "stuck runs, first five:",
            *last_steps,
        ]
    )


@ON_BOTH_BROKERS
def test_workflows_survive_repeated_sigkills_and_a_redis_flush(
    orc: Orchestrator,
    env: dict[str, str],
    tmp_path: Path,
    private_redis: EmbeddedRedis,
    stub: StubAnthropicServer,
) -> None:
    rng = random.Random(SEED)
    fleet = Fleet(env, tmp_path)
    # Recovery needs no singleton: two coordinators share the sweeps through their leases.
    fleet.start("coordinator-a", "--coordinator", "--concurrency", "4")
    fleet.start("coordinator-b", "--coordinator", "--concurrency", "4")
    fleet.start("agents-a", "--all-agents", "--concurrency", "8")
    fleet.start("agents-b", "--all-agents", "--concurrency", "8")
    flushed_at: int | None = None
    finished = 0
    try:
        wait_for_workers(orc.celery, 4, processes=list(fleet.workers.values()))
        started = time.monotonic()
        ids = [orc.submit("research", f"topic {n}").id for n in range(WORKFLOWS)]

        next_kill = time.monotonic() + rng.uniform(*KILL_EVERY_S)
        kill_at_finished = KILL_EVERY_FINISHED
        while (finished := finished_runs(orc, ids)) < WORKFLOWS:
            if time.monotonic() - started > FINISH_WITHIN_S:
                break
            if flushed_at is None and finished >= FLUSH_AFTER_FINISHED:
                redis.Redis.from_url(private_redis.url).flushall()
                flushed_at = finished
            if time.monotonic() >= next_kill or finished >= kill_at_finished:
                # Agent workers die more often than coordinators, as pods under load do.
                fleet.kill_and_restart(rng.choice(KILLED))
                next_kill = time.monotonic() + rng.uniform(*KILL_EVERY_S)
                # From the mark, not from ``finished``: when many runs finish between two
                # looks (a fast broker), the kills they were due catch up on the next looks.
                if finished >= kill_at_finished:
                    kill_at_finished += KILL_EVERY_FINISHED
            time.sleep(0.1)
        elapsed = time.monotonic() - started
    finally:
        fleet.stop()
    if finished < WORKFLOWS:
        pytest.fail(_diagnosis(orc, ids, fleet, finished, elapsed), pytrace=False)

    results = [orc.run(run_id).result() for run_id in ids]
    statuses = Counter(r.status for r in results)
    calls = stub.stats()
    by_request: dict[str, list[int]] = calls["by_request"]

    with session_scope(orc.database_url) as session:
        traces = session.exec(
            select(TraceRow.step_id, TraceRow.attempt, TraceRow.outcome).where(
                col(TraceRow.workflow_id).in_(ids)
            )
        ).all()
        attempts_used = session.exec(
            select(StepRow.id, StepRow.attempt).where(col(StepRow.workflow_id).in_(ids))
        ).all()
        requests = session.exec(
            select(MessageRow.step_id, MessageRow.payload, MessageRow.delivered_at).where(
                col(MessageRow.workflow_id).in_(ids), MessageRow.type == "request"
            )
        ).all()
        # SUM of a BIGINT column is NUMERIC on PostgreSQL: Decimals, made ints here.
        ledger_by_agent = {
            agent: int(cost)
            for agent, cost in session.exec(
                select(CostLedgerRow.agent_id, func.sum(CostLedgerRow.cost_micro))
                .where(col(CostLedgerRow.workflow_id).in_(ids))
                .group_by(col(CostLedgerRow.agent_id))
            ).all()
        }
        ledger_ids = set(
            session.exec(
                select(CostLedgerRow.id).where(col(CostLedgerRow.workflow_id).in_(ids))
            ).all()
        )
        unknown = session.exec(
            select(func.count(), func.sum(CostLedgerRow.cost_micro)).where(
                col(CostLedgerRow.workflow_id).in_(ids), col(CostLedgerRow.unknown).is_(True)
            )
        ).one()
        ledger_by_run = {
            run: int(cost)
            for run, cost in session.exec(
                select(CostLedgerRow.workflow_id, func.sum(CostLedgerRow.cost_micro))
                .where(col(CostLedgerRow.workflow_id).in_(ids))
                .group_by(col(CostLedgerRow.workflow_id))
            ).all()
        }

    succeeded = {f"{step}:{attempt}" for step, attempt, outcome in traces if outcome == "succeeded"}
    recorded = {f"{step}:{attempt}" for step, attempt, _ in traces}
    unrecorded_calls = [key for key in by_request if key not in recorded]
    off_the_books = [key for key in by_request if key not in ledger_ids]
    turned_away = sum(1 for _, _, outcome in traces if outcome == "breaker_open")
    last_attempt = dict(attempts_used)
    delivered = sum(1 for _, _, at in requests if at is not None)
    superseded = sum(
        1
        for step, payload, at in requests
        if at is None and int(payload["payload"]["attempt"]) < last_attempt[step]
    )
    lost = len(requests) - delivered - superseded

    store = orc.budget_store()
    assert store is not None
    day = store.today()
    counters = {agent: store.spent(f"agent:{agent}", day) for agent in ledger_by_agent}

    cap = usd_to_micro(AGENT_CAP_USD)
    spend = {agent: (ledger_by_agent[agent], counters[agent]) for agent in counters}
    print(
        f"\nchaos on {broker_for(orc.settings.effective_broker_url).name}:",
        f"{WORKFLOWS} workflows x {STEPS} steps in {elapsed:.0f}s;",
        f"statuses {dict((s.value, n) for s, n in statuses.items())};",
        f"kills {dict(fleet.kills)} ({sum(fleet.kills.values())} in all);",
        f"Redis flushed once, at {flushed_at} finished workflows;",
        f"model calls {calls['calls']} {calls['by_status']};",
        f"successful attempts {len(succeeded)}, each called once: "
        f"{all(by_request.get(k) == [200] for k in succeeded)};",
        f"attempts that reached the model twice {sum(len(v) > 1 for v in by_request.values())};",
        f"calls cut off by a kill before they were recorded {len(unrecorded_calls)}, "
        f"booked as unknown {unknown[0]} (at most {unknown[1] or 0} micro-dollars), "
        f"answered calls not in the ledger {len(off_the_books)};",
        f"calls turned away by a breaker {turned_away};",
        f"request messages {len(requests)}: delivered {delivered}, "
        f"given up and re-dispatched by the sweep {superseded}, lost {lost};",
        f"spend per agent in micro-dollars (ledger, Redis) {spend} of a cap of {cap};",
        f"dearest run {max(ledger_by_run.values())} of a {usd_to_micro(RUN_BUDGET_USD)} budget",
    )

    assert statuses == {WorkflowStatus.SUCCEEDED: WORKFLOWS}
    assert (
        flushed_at is not None and sum(fleet.kills.values()) >= WORKFLOWS // KILL_EVERY_FINISHED - 1
    )
    # one successful call per step, and no attempt ever reached the model twice
    assert len(succeeded) == WORKFLOWS * STEPS
    assert all(by_request.get(key) == [200] for key in succeeded)
    assert all(len(statuses_seen) == 1 for statuses_seen in by_request.values())
    # every call the provider answered is on the books, and no breaker blamed it for the kills
    assert off_the_books == []
    assert turned_away == 0
    # no cap passed, by the ledger or by the counters rebuilt from it after the flush
    assert all(spent <= usd_to_micro(AGENT_CAP_USD) for spent in ledger_by_agent.values())
    assert all(spent <= usd_to_micro(AGENT_CAP_USD) for spent in counters.values())
    assert all(spent <= usd_to_micro(RUN_BUDGET_USD) for spent in ledger_by_run.values())
    assert all(counters[agent] >= ledger_by_agent[agent] for agent in counters)
    assert lost == 0
