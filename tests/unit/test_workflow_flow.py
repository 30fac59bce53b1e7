"""A workflow's life, driven in-process: the real coordinator, step runner, bus audit and SQLite,
with messages delivered by ``drain`` instead of a broker."""

from __future__ import annotations

import itertools
import time
from datetime import timedelta

import fakeredis
import pytest
from sqlalchemy import update
from sqlmodel import col, func, select

from bus.broker_view import BrokerView
from bus.envelope import COORDINATOR
from orchestration import Agent, BrokerUnavailable, InvalidRequest, Workflow, WorkflowStatus
from orchestration.guards.spotlight import unmark_prompt as plain
from orchestration.maintenance import Maintenance
from orchestration.pricing import micro_to_usd
from storage.db import session_scope
from storage.models import DeadLetterRow, MessageRow, StepRow, TraceRow, WorkflowRow, utcnow
from tests.conftest import TeamFactory
from tests.support import drain, run_inline

ECHO = "offline:echo"


def _count(url: str, model: type, **where: object) -> int:
    with session_scope(url) as session:
        query = select(func.count()).select_from(model)
        for name, value in where.items():
            query = query.where(getattr(model, name) == value)
        return int(session.exec(query).one())


def _three(inline_team: TeamFactory, **models: str):  # type: ignore[no-untyped-def]
    agents = [
        Agent(id=a, model=models.get(a, ECHO), system_prompt=f"You are the {a}.", max_retries=2)
        for a in ("researcher", "writer", "reviewer")
    ]
    return inline_team(
        *agents, workflows=(Workflow.sequence("research", ["researcher", "writer", "reviewer"]),)
    )


def test_a_sequence_runs_each_step_on_the_previous_ones_output(inline_team: TeamFactory) -> None:
    orc, bus = _three(inline_team)
    result = run_inline(orc, bus, "research", "the telegraph")

    assert result.status is WorkflowStatus.SUCCEEDED
    assert [s.agent for s in result.steps] == ["researcher", "writer", "reviewer"]
    assert all(s.status == "succeeded" and s.attempt == 1 for s in result.steps)
    with session_scope(orc.database_url) as session:
        steps = session.exec(select(StepRow).order_by(col(StepRow.position))).all()
    assert plain(steps[0].prompt) == "the telegraph"
    # Each later prompt carries the request and the previous step's output, composed at dispatch.
    for earlier, later in itertools.pairwise(steps):
        assert later.prompt is not None and earlier.output is not None
        assert plain(later.prompt).startswith("Request:\nthe telegraph")
        assert plain(later.prompt).endswith(earlier.output)
    assert result.output == steps[2].output


def test_the_workflow_cost_is_the_sum_of_its_steps_and_each_step_has_tokens_and_times(
    inline_team: TeamFactory,
) -> None:
    orc, bus = _three(inline_team)
    result = run_inline(orc, bus, "research", "the telegraph")

    assert result.cost_usd == pytest.approx(sum(s.cost_usd for s in result.steps))
    assert result.cost_usd > 0
    for step in result.steps:
        assert step.tokens.input > 0 and step.tokens.output > 0
        assert step.started_at is not None and step.finished_at is not None
        assert step.started_at <= step.finished_at


def test_every_message_is_on_record_and_stamped_when_its_consumer_took_it(
    inline_team: TeamFactory,
) -> None:
    orc, bus = _three(inline_team)
    run_inline(orc, bus, "research", "the telegraph")

    with session_scope(orc.database_url) as session:
        rows = {row.id: row for row in session.exec(select(MessageRow)).all()}
    # one request per step: the run and its first decision commit together, and so do an
    # agent's result and the decision about the next step; no hop through the coordinator queue
    assert [(m.sender, m.to[0]) for m in bus.sent] == [
        ("coordinator", "researcher"),
        ("coordinator", "writer"),
        ("coordinator", "reviewer"),
    ]
    # each agent's response is on record too, delivered to the coordinator as it was recorded
    responses = [row for row in rows.values() if row.type == "response"]
    assert sorted((row.sender, row.recipients[0]) for row in responses) == [
        ("researcher", "coordinator"),
        ("reviewer", "coordinator"),
        ("writer", "coordinator"),
    ]
    assert set(rows) == {m.id for m in bus.sent} | {row.id for row in responses}
    assert all(row.delivered_at is not None for row in rows.values())


def test_a_request_delivered_again_after_its_step_finished_does_not_call_the_model(
    inline_team: TeamFactory,
) -> None:
    orc, bus = _three(inline_team)
    run_inline(orc, bus, "research", "the telegraph")
    requests = [m for m in bus.sent if m.to[0] != COORDINATOR]

    for message in requests:  # the broker redelivers every request once more
        orc.step_runner().run(message)

    assert _count(orc.database_url, TraceRow) == 3
    assert not bus.queue


def test_the_same_attempt_delivered_twice_calls_the_model_once(inline_team: TeamFactory) -> None:
    orc, bus = _three(inline_team)
    orc.submit("research", "the telegraph")
    _, request = bus.queue.popleft()

    orc.step_runner().run(request)
    orc.step_runner().run(request)

    assert _count(orc.database_url, TraceRow) == 1


def test_a_retryable_failure_is_retried_after_its_backoff(inline_team: TeamFactory) -> None:
    orc, bus = _three(inline_team, writer="offline:echo?fail=rate_limited&fail_first=1")
    run = orc.submit("research", "the telegraph")
    drain(orc, bus)
    assert run.result().steps[1].status == "pending"  # waiting for its retry's due time

    time.sleep(0.1)  # the injected rate limit asks for 0.05 s
    Maintenance(orc.bus, orc.settings).sweep()
    drain(orc, bus)

    result = run.result()
    assert result.status is WorkflowStatus.SUCCEEDED
    assert result.steps[1].attempt == 2
    assert _count(orc.database_url, TraceRow, outcome="rate_limited") == 1


def test_a_step_that_keeps_failing_fails_the_workflow_with_a_readable_reason(
    inline_team: TeamFactory,
) -> None:
    orc, bus = _three(inline_team, writer="offline:echo?fail=rate_limited")
    run = orc.submit("research", "the telegraph")
    for _ in range(4):
        drain(orc, bus)
        time.sleep(0.1)
        Maintenance(orc.bus, orc.settings).sweep()
    drain(orc, bus)

    result = run.result()
    assert result.status is WorkflowStatus.FAILED
    assert result.steps[1].attempt == 3  # the first attempt and max_retries=2 more
    assert result.error is not None
    assert "step 2 (writer) failed after 3 attempt(s): rate_limited" in result.error
    assert result.steps[0].status == "succeeded" and result.steps[0].output
    assert len(result.steps) == 2  # the reviewer's node never became ready: no step was made


def test_an_error_that_will_not_go_away_is_not_retried(inline_team: TeamFactory) -> None:
    orc, bus = _three(inline_team, researcher="offline:echo?fail=rejected")
    result = run_inline(orc, bus, "research", "the telegraph")

    assert result.status is WorkflowStatus.FAILED
    assert result.steps[0].attempt == 1


def test_the_fallback_agent_takes_over_and_the_result_says_so(inline_team: TeamFactory) -> None:
    orc, bus = inline_team(
        Agent(id="backup", model=ECHO),  # registered before the agent naming it
        Agent(id="primary", model="offline:echo?fail=rejected", fallback="backup"),
        workflows=(Workflow.sequence("w", ["primary"]),),
    )
    result = run_inline(orc, bus, "w", "the telegraph")

    assert result.status is WorkflowStatus.SUCCEEDED
    assert result.steps[0].agent == "backup"
    assert result.steps[0].requested_agent == "primary"
    assert result.steps[0].attempt == 2


def test_an_attempt_whose_worker_died_is_dispatched_again_and_the_old_message_is_ignored(
    inline_team: TeamFactory,
) -> None:
    orc, bus = _three(inline_team)
    run = orc.submit("research", "the telegraph")
    lost = bus.queue.popleft()
    # A worker claimed the attempt and was killed: the step is running, its lease runs out.
    with session_scope(orc.database_url) as session:
        session.exec(
            update(StepRow)
            .where(col(StepRow.position) == 0)
            .values(status="running", lease_until=utcnow() - timedelta(seconds=1))
        )

    assert Maintenance(orc.bus, orc.settings).sweep()["expired_leases"] == 1
    bus.queue.append(lost)  # the broker redelivers the old message too
    drain(orc, bus)

    result = run.result()
    assert result.status is WorkflowStatus.SUCCEEDED
    assert result.steps[0].attempt == 2
    assert _count(orc.database_url, TraceRow, step_id=result.steps[0].id) == 1


def test_a_call_whose_result_came_after_its_lease_ran_out_is_still_charged_to_the_workflow(
    inline_team: TeamFactory,
) -> None:
    orc, bus = _three(inline_team)
    run = orc.submit("research", "the telegraph")
    _, late = bus.queue.popleft()
    runner = orc.step_runner()
    call = runner._call

    def slow_call(agent, request):  # type: ignore[no-untyped-def]
        outcome = call(agent, request)
        # While the model answered, the lease ran out and the sweep gave the attempt up.
        with session_scope(orc.database_url) as session:
            session.exec(
                update(StepRow)
                .where(col(StepRow.position) == 0)
                .values(lease_until=utcnow() - timedelta(seconds=1))
            )
        assert Maintenance(orc.bus, orc.settings).sweep()["expired_leases"] == 1
        return outcome

    runner._call = slow_call  # type: ignore[method-assign]
    runner.run(late)
    runner._call = call  # type: ignore[method-assign]
    drain(orc, bus)

    result = run.result()
    assert result.status is WorkflowStatus.SUCCEEDED and result.steps[0].attempt == 2
    with session_scope(orc.database_url) as session:
        traces = session.exec(select(TraceRow)).all()
    assert len(traces) == 4  # the late call is on record
    late_cost = sum(t.cost_micro for t in traces) - sum(s.cost_micro for s in _steps(orc))
    assert late_cost > 0  # not on any step, since its attempt no longer held the step...
    assert result.cost_usd == micro_to_usd(sum(t.cost_micro for t in traces))  # ...but paid


def _steps(orc):  # type: ignore[no-untyped-def]
    with session_scope(orc.database_url) as session:
        return session.exec(select(StepRow)).all()


def test_a_request_the_broker_never_took_is_dispatched_again_by_the_sweep(
    inline_team: TeamFactory,
) -> None:
    orc, bus = _three(inline_team)
    bus.broker_down = True
    with pytest.raises(BrokerUnavailable, match="is recorded") as told:
        orc.submit("research", "the telegraph")  # said so, but the run is in the database
    assert told.value.run_id is not None
    run = orc.run(told.value.run_id)
    assert _count(orc.database_url, MessageRow, workflow_id=run.id) == 1
    bus.broker_down = False

    sweep = Maintenance(bus, orc.settings, BrokerView(fakeredis.FakeRedis()), lost_after_s=0)
    assert sweep.sweep()["lost_requests"] == 1
    drain(orc, bus)
    assert run.result().status is WorkflowStatus.SUCCEEDED


def test_a_workflow_nothing_moves_is_advanced_by_the_sweep(inline_team: TeamFactory) -> None:
    # Given a coordinator that died before its decision committed: the first step is still
    # pending and nothing is on its way
    orc, bus = _three(inline_team)
    run = orc.submit("research", "the telegraph")
    bus.queue.clear()
    with session_scope(orc.database_url) as session:
        session.exec(
            update(StepRow)
            .where(col(StepRow.workflow_id) == run.id)
            .values(status="pending", attempt=0, agent_attempt=0)
        )

    assert Maintenance(bus, orc.settings, idle_after_s=0).sweep()["idle_workflows"] == 1
    drain(orc, bus)
    assert run.result().status is WorkflowStatus.SUCCEEDED


def test_a_teams_sweep_leaves_the_workflows_of_another_team_in_the_same_database_alone(
    inline_team: TeamFactory,
) -> None:
    # Given a workflow of team "unit" that nothing moves, in a database another team shares
    orc, bus = _three(inline_team)
    run = orc.submit("research", "the telegraph")
    bus.queue.clear()
    with session_scope(orc.database_url) as session:
        session.exec(
            update(StepRow)
            .where(col(StepRow.workflow_id) == run.id)
            .values(status="pending", attempt=0, agent_attempt=0)
        )

    # Then the other team's sweep, which would dispatch on its own broker, does not touch it
    other = Maintenance(bus, orc.settings, idle_after_s=0, team="another-team")
    assert other.sweep()["idle_workflows"] == 0
    assert not bus.queue
    # and its own team's sweep moves it on
    ours = Maintenance(bus, orc.settings, idle_after_s=0, team=orc.name)
    assert ours.sweep()["idle_workflows"] == 1
    drain(orc, bus)
    assert run.result().status is WorkflowStatus.SUCCEEDED


def test_a_workflow_that_is_moving_is_not_advanced_by_the_sweep(inline_team: TeamFactory) -> None:
    orc, bus = _three(inline_team)
    orc.submit("research", "the telegraph")

    # the first request is on its way: the workflow is not idle, however old its last change
    assert Maintenance(bus, orc.settings, idle_after_s=0).sweep()["idle_workflows"] == 0


def test_advancing_a_finished_workflow_changes_nothing(inline_team: TeamFactory) -> None:
    orc, bus = _three(inline_team)
    result = run_inline(orc, bus, "research", "the telegraph")

    orc.coordinator().advance(result.id)

    assert not bus.queue
    assert orc.run(result.id).result() == result


@pytest.mark.parametrize(
    ("workflow", "text", "priority", "error"),
    [
        ("nope", "x", 5, "workflow 'nope' is not registered"),
        ("research", "", 5, "is empty"),
        ("research", "   \n", 5, "is empty"),
        ("research", "x" * 100_001, 5, "over the limit of 100000"),
        ("research", "x", 10, "outside 0..9"),
        ("research", "x", -1, "outside 0..9"),
        ("research", b"hello", 5, r"must be text \(a str\), got a bytes; decode it first"),
        ("research", None, 5, r"must be text \(a str\), got nothing \(None\)"),
        ("research", 42, 5, r"must be text \(a str\), got a int"),
        ("research", "tele\x00graph", 5, "a NUL character at position 4"),
        ("research", "caf\udce9", 5, "not valid text at position 3: '\\\\udce9' is half of"),
    ],
)
def test_bad_input_gets_a_clear_error_and_writes_nothing(
    inline_team: TeamFactory, workflow: str, text: object, priority: int, error: str
) -> None:
    orc, bus = _three(inline_team)
    orc.ensure_ready()
    with pytest.raises(InvalidRequest, match=error):
        orc.submit(workflow, text, priority=priority)  # type: ignore[arg-type]
    assert _count(orc.database_url, WorkflowRow) == 0
    assert _count(orc.database_url, MessageRow) == 0
    assert not bus.sent


def test_reattaching_to_an_unknown_run_says_so(inline_team: TeamFactory) -> None:
    from storage.errors import RunNotFound

    orc, _ = _three(inline_team)
    with pytest.raises(RunNotFound, match="no workflow run with id 'missing'"):
        orc.run("missing")


def test_a_task_whose_argument_is_not_an_agentyard_message_is_dead_lettered(
    inline_team: TeamFactory,
) -> None:
    orc, _ = _three(inline_team)
    task = orc.celery.tasks["agent.writer"]

    task(envelope={"not": "a message"})  # run in this process, as a worker would run it

    with session_scope(orc.database_url) as session:
        [letter] = session.exec(select(DeadLetterRow)).all()
    assert letter.task == "agent.writer" and "not an agentyard message" in letter.reason
    assert "a message" in letter.body


def test_a_workflow_waiting_past_its_deadline_is_ended_by_the_sweep(
    inline_team: TeamFactory,
) -> None:
    orc, bus = inline_team(
        Agent(id="slowpoke", model="offline:echo?fail=rate_limited", max_retries=5),
        # a second: room for the first attempt whatever else the process does (a pause of the
        # garbage collector once took 0.35s of a 0.2s deadline)
        workflows=(Workflow.sequence("w", ["slowpoke"], deadline_s=1.0),),
    )
    run = orc.submit("w", "the telegraph")
    drain(orc, bus)  # the call is rate limited: a retry waits for its due time
    assert run.result().status is WorkflowStatus.RUNNING

    time.sleep(1.05)
    assert Maintenance(orc.bus, orc.settings).sweep()["overdue_workflows"] == 1
    drain(orc, bus)

    result = run.result()
    assert result.status is WorkflowStatus.TIMED_OUT and result.output is None
    assert Maintenance(orc.bus, orc.settings).sweep()["overdue_workflows"] == 0
