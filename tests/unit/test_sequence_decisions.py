"""A sequence's decisions on plain objects: the interpreter over an in-memory store, no database,
no broker. Steps are made when their node becomes ready, so a run's store holds only those."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from orchestration import Agent
from orchestration.guards.spotlight import unmark_prompt as plain
from orchestration.retry import Backoff
from orchestration.team import Team
from orchestration.workflow.graph import Graph, build_graph
from orchestration.workflow.interpreter import Interpreter
from orchestration.workflow.kinds.step import Rules
from orchestration.workflow.state import Plan, RunState, StepState
from tests.memory_store import MemoryStore

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _rules() -> Rules:
    team = Team("t")
    team.add_agent(Agent(id="b", model="offline:echo", max_retries=0))
    team.add_agent(Agent(id="a", model="offline:echo", max_retries=1, fallback="b"))
    return Rules(team=team, backoff=Backoff(base_s=1.0, cap_s=8.0), dispatch_timeout_s=60)


def _run() -> RunState:
    return RunState(id="w", name="seq", status="pending", priority=7, input="the telegraph")


def _graph(*agents: str) -> Graph:
    return build_graph(list(agents), "seq")


def _steps(*agents: str) -> list[StepState]:
    """The steps made so far of a sequence of ``agents`` (one per agent given)."""
    names = [node.name for node in _graph(*agents).nodes]
    return [
        StepState(id=f"s{i}", position=i, agent_id=agent, node=names[i], attempt=1)
        for i, agent in enumerate(agents)
    ]


def _succeed(step: StepState, output: str) -> None:
    step.status, step.output, step.attempt = "succeeded", output, 1
    step.ran_by = step.agent_id


def decide(
    run: RunState,
    graph: Graph,
    steps: list[StepState],
    step: StepState | None = None,
    now: datetime = NOW,
    rules: Rules | None = None,
) -> tuple[Plan, MemoryStore]:
    """What the interpreter decides after ``step``'s attempt was recorded (None: whatever waits)."""
    store = MemoryStore(steps=steps)
    interpreter = Interpreter(run, graph, store, rules or _rules(), now)
    plan = interpreter.advance() if step is None else interpreter.after_step(step)
    return plan, store


def test_a_new_run_dispatches_its_first_step_with_the_input_as_prompt() -> None:
    run, store = _run(), MemoryStore()
    plan = Interpreter(run, _graph("a", "b"), store, _rules(), NOW).start()

    assert run.status == "running" and plan.run_changed
    [first] = store.steps  # a sequence's next step is made when its turn comes
    assert (first.node, first.position, first.scope) == ("a", 0, "")
    assert (first.status, first.attempt, first.agent_attempt) == ("dispatched", 1, 1)
    assert plain(first.prompt) == "the telegraph" and first.history is None
    assert first.lease_until == NOW + timedelta(seconds=60)
    [message] = plan.messages
    assert message.id == first.request_id and message.to == ("a",) and message.priority == 7


def test_a_later_step_gets_the_previous_output_and_its_agents_earlier_exchanges() -> None:
    run, steps = _run(), _steps("a", "b")
    run.status = "running"
    steps[0].prompt = "the telegraph"
    _succeed(steps[0], "Facts. More facts.")
    steps[1].prompt = "write it"
    _succeed(steps[1], "The article.")

    plan, store = decide(run, _graph("a", "b", "a"), steps, steps[1])

    third = store.step_of("a-2")
    assert [m.step_id for m in plan.messages] == [third.id] and not plan.run_changed
    assert (third.position, third.parent_step_id) == (2, "s1")
    assert third.prompt is not None
    assert plain(third.prompt).startswith("Request:\nthe telegraph")
    assert "- step 1 (a): Facts. More facts." in plain(third.prompt)
    assert plain(third.prompt).endswith("Output of the previous step (b):\nThe article.")
    assert third.history == [["the telegraph", "Facts. More facts."]]  # a's own exchange only


def test_a_step_under_way_or_waiting_for_its_retry_is_left_alone() -> None:
    run, steps = _run(), _steps("a")
    run.status = "running"
    steps[0].status = "running"
    assert not decide(run, _graph("a", "b"), steps)[0].messages

    steps[0].status, steps[0].due_at = "pending", NOW + timedelta(seconds=1)
    assert not decide(run, _graph("a", "b"), steps)[0].messages
    later = NOW + timedelta(seconds=1)
    [retry] = decide(run, _graph("a", "b"), steps, now=later)[0].messages
    assert retry.step_id == "s0" and steps[0].attempt == 2


def test_a_retryable_failure_is_retried_then_handed_to_the_fallback_then_fails_the_run() -> None:
    run, steps = _run(), _steps("a")
    run.status = "running"
    step = steps[0]
    step.status, step.attempt, step.agent_attempt, step.ran_by = "attempt_failed", 1, 1, "a"
    step.error_retryable, step.retry_after_s, step.error_kind = True, 2.0, "rate_limited"

    decide(run, _graph("a"), steps, step)
    assert (step.status, step.due_at) == ("pending", NOW + timedelta(seconds=2))

    step.status, step.attempt, step.agent_attempt = "attempt_failed", 2, 2  # a's retry is spent
    plan, _ = decide(run, _graph("a"), steps, step)
    assert (step.status, step.ran_by, step.agent_attempt) == ("dispatched", "b", 1)
    assert plan.messages[0].to == ("b",)

    step.status, step.attempt, step.error = "attempt_failed", 3, "overloaded again"
    plan, _ = decide(run, _graph("a"), steps, step)  # b has no retries and no fallback
    assert step.status == "failed" and run.status == "failed" and plan.run_changed
    assert run.error == "step 1 (b) failed after 3 attempt(s): rate_limited: overloaded again"
    assert not plan.messages


def test_a_run_whose_steps_all_succeeded_succeeds_with_the_last_output() -> None:
    run, steps = _run(), _steps("a", "b")
    run.status = "running"
    _succeed(steps[0], "one")
    _succeed(steps[1], "two")

    plan, _ = decide(run, _graph("a", "b"), steps, steps[1])
    assert (run.status, run.output, run.finished_at) == ("succeeded", "two", NOW)
    assert plan.run_changed and not plan.messages

    again, _ = decide(run, _graph("a", "b"), steps)  # deciding for a finished run does nothing
    assert not again.run_changed and not again.messages


def test_a_call_refused_by_a_cap_waits_while_calls_under_way_hold_its_room_else_ends_the_run() -> (
    None
):
    run, steps = _run(), _steps("a", "b")
    run.status = "running"
    _succeed(steps[0], "facts")
    step = steps[1]
    step.status, step.attempt, step.agent_attempt, step.ran_by = "attempt_failed", 1, 1, "b"
    step.error_kind, step.error = "cost_limit_exceeded", "the run:w cap would be broken"
    rules = _rules()
    b_with_retries = rules.team.agents["b"].model_copy(update={"max_retries": 2})
    rules.team.agents["b"] = b_with_retries

    step.error_retryable = True  # the room is held by calls under way
    decide(run, _graph("a", "b"), steps, step, rules=rules)
    assert step.status == "pending" and step.due_at is not None and step.due_at > NOW

    step.status, step.error_retryable = "attempt_failed", False  # the room is spent
    plan, _ = decide(run, _graph("a", "b"), steps, step, rules=rules)
    assert step.status == "failed" and step.ran_by == "b"  # no fallback either
    assert (run.status, run.output) == ("budget_exceeded", "facts")
    assert run.error is not None and run.error.startswith("step 2 (b) was not run")
    assert plan.run_changed and not plan.messages


def test_a_refusal_is_retryable_only_when_the_money_spent_leaves_room_for_the_call() -> None:
    from storage.errors import CostLimitExceeded

    assert CostLimitExceeded("run:w", 1_000, 3_000, 5_000, 3_500).retryable
    assert not CostLimitExceeded("run:w", 2_000, 0, 5_000, 3_500).retryable


def test_a_run_past_its_deadline_times_out_keeping_what_its_finished_steps_produced() -> None:
    run, steps = _run(), _steps("a")
    run.status, run.deadline_at = "running", NOW
    _succeed(steps[0], "facts")

    plan, store = decide(run, _graph("a", "b"), steps)

    assert (run.status, run.output, run.finished_at) == ("timed_out", "facts", NOW)
    assert run.error is not None and "1 of 2 step(s) done" in run.error
    assert plan.run_changed and not plan.messages and len(store.steps) == 1
