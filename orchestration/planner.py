"""What a workflow does next: the coordinator's decisions, as pure functions over plain state.

The coordinator (``coordinator.py``) loads a run and its steps, calls ``plan_sequence``, and
writes back what changed; the planner itself touches no database and no broker, so every rule
here is tested on plain objects. It mutates the states it is given and lists what it changed.

A sequence runs one step at a time. For the first step that has not succeeded:

- ``pending`` and due: dispatch it. The request is composed here, once: the prompt (the request,
  a summary of the earlier steps and the previous step's output) and the agent's earlier
  exchanges in this run go on the step row, so the worker that claims it reads one row;
- ``attempt_failed``: retry on the same agent after a backoff, hand it to the agent's fallback,
  or fail it (and with it the workflow). A call refused by a spend cap is tried again only while
  the cap's room is held by calls under way (it may come back); otherwise, or once its retries
  are spent, the workflow ends ``budget_exceeded``, keeping what the finished steps produced;
- ``dispatched`` or ``running``: nothing to do, the attempt is under way.

When every step has succeeded, the workflow succeeds with the last step's output.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from bus.envelope import AgentMessage, request_step
from orchestration.context import HISTORY_EXCHANGES, EarlierStep, compose_prompt
from orchestration.definitions import Agent
from orchestration.retry import Backoff
from orchestration.team import Team
from storage.errors import BreakerOpen, CostLimitExceeded
from storage.models import StepStatus, WorkflowStatus, as_utc


@dataclass(slots=True)
class RunState:
    """The columns of a workflow row that the planner reads or changes."""

    id: str
    name: str
    status: str
    priority: int
    input: str
    budget_micro: int | None = None
    cost_micro: int = 0  # every call so far, the one just recorded included
    deadline_at: datetime | None = None
    created_at: datetime | None = None
    output: str | None = None
    error: str | None = None
    finished_at: datetime | None = None


@dataclass(slots=True)
class StepState:
    """The columns of a step row that the planner reads or changes."""

    id: str
    position: int
    agent_id: str
    parent_step_id: str | None = None  # the step whose output this one takes
    node: str | None = None  # its node in the run's graph (None: a run from before graphs)
    iteration: int | None = None  # 1-based, in a loop
    branch: int | None = None  # 0-based, in a fan-out or a parallel
    status: str = StepStatus.PENDING.value
    ran_by: str | None = None
    attempt: int = 0
    agent_attempt: int = 0
    request_id: str | None = None
    prompt: str | None = None
    history: list[list[str]] | None = None
    output: str | None = None
    error: str | None = None
    error_kind: str | None = None
    error_retryable: bool = False
    retry_after_s: float | None = None
    due_at: datetime | None = None
    lease_until: datetime | None = None
    dispatched_at: datetime | None = None
    finished_at: datetime | None = None

    @property
    def agent(self) -> str:
        """The agent that runs (or ran) the current attempt: a fallback, once one took over."""
        return self.ran_by or self.agent_id


@dataclass
class Plan:
    """What one decision changed; the coordinator writes it and routes the messages."""

    steps: list[StepState] = field(default_factory=list)  # changed, to be written back
    run_changed: bool = False
    messages: list[AgentMessage] = field(default_factory=list)
    events: list[tuple[str, dict[str, object]]] = field(default_factory=list)  # for the log


@dataclass(frozen=True, slots=True)
class Rules:
    """What the planner needs from the team and the settings."""

    team: Team
    backoff: Backoff
    dispatch_timeout_s: float


def plan_sequence(run: RunState, steps: list[StepState], now: datetime, rules: Rules) -> Plan:
    """Decide what is due for a sequence workflow; ``steps`` in position order."""
    plan = Plan()
    if WorkflowStatus(run.status).finished:
        return plan
    if run.deadline_at is not None and now >= as_utc(run.deadline_at):
        _finish_timed_out(run, steps, now, plan)
        return plan
    for index, step in enumerate(steps):
        if step.status == StepStatus.SUCCEEDED.value:
            continue
        if step.status == StepStatus.ATTEMPT_FAILED.value:
            _after_failed_attempt(step, now, rules, plan)
        if step.status == StepStatus.FAILED.value:
            _finish_failed(run, steps, step, now, plan)
        elif step.status == StepStatus.PENDING.value and _due(step, now):
            _dispatch(run, steps, index, now, rules, plan)
        return plan
    _finish_succeeded(run, steps, now, plan)
    return plan


def _dispatch(
    run: RunState, steps: list[StepState], index: int, now: datetime, rules: Rules, plan: Plan
) -> None:
    step = steps[index]
    done = [s for s in steps[:index] if s.status == StepStatus.SUCCEEDED.value]
    previous = done[-1] if done else None
    step.ran_by = step.agent
    step.attempt += 1
    step.agent_attempt += 1
    step.status = StepStatus.DISPATCHED.value
    step.prompt = compose_prompt(
        run.input,
        run.input if previous is None else (previous.output or ""),
        step.position,
        [EarlierStep(s.position, s.agent, s.output or "") for s in done],
    )
    exchanges = [[s.prompt or "", s.output or ""] for s in done if s.agent == step.agent]
    step.history = exchanges[-HISTORY_EXCHANGES:] or None
    step.dispatched_at = now
    step.due_at = None
    step.lease_until = now + timedelta(seconds=rules.dispatch_timeout_s)
    request = request_step(
        agent_id=step.agent,
        workflow_id=run.id,
        step_id=step.id,
        attempt=step.attempt,
        priority=run.priority,
        workflow=run.name,
        budget_micro=run.budget_micro,
    )
    step.request_id = request.id
    plan.steps.append(step)
    plan.messages.append(request)
    plan.events.append(
        ("step.dispatched", {"step_id": step.id, "agent_id": step.agent, "attempt": step.attempt})
    )
    if run.status == WorkflowStatus.PENDING.value:
        run.status = WorkflowStatus.RUNNING.value
        plan.run_changed = True


def _after_failed_attempt(step: StepState, now: datetime, rules: Rules, plan: Plan) -> None:
    """Retry on the same agent, move to its fallback, or give up."""
    agent = rules.team.agent(step.agent)
    plan.steps.append(step)
    if step.error_kind == BreakerOpen.kind:
        _while_breaker_open(step, agent, now, plan)
        return
    retry = step.error_retryable and step.agent_attempt <= agent.max_retries
    if step.error_kind == CostLimitExceeded.kind and not retry:
        step.status = StepStatus.FAILED.value  # no fallback: the caps would refuse it as well
        step.finished_at = now
    elif retry:
        delay = rules.backoff.delay_s(step.agent_attempt, step.retry_after_s)
        step.status = StepStatus.PENDING.value
        step.due_at = now + timedelta(seconds=delay)
        plan.events.append(
            (
                "step.retry_scheduled",
                {
                    "step_id": step.id,
                    "agent_id": agent.id,
                    "attempt": step.attempt,
                    "delay_s": round(delay, 3),
                    "error_kind": step.error_kind,
                },
            )
        )
    elif agent.fallback is not None:
        _hand_to_fallback(step, agent, agent.fallback, plan)
    else:
        step.status = StepStatus.FAILED.value
        step.finished_at = now


def _while_breaker_open(step: StepState, agent: Agent, now: datetime, plan: Plan) -> None:
    """The agent's breaker turned the call away: its fallback takes the step, or the step waits
    until the breaker may let a call through (the attempt not made is not counted)."""
    if agent.fallback is not None:
        _hand_to_fallback(step, agent, agent.fallback, plan)
        return
    step.agent_attempt = max(0, step.agent_attempt - 1)
    step.due_at = now + timedelta(seconds=max(step.retry_after_s or 0.0, 0.05))
    step.status = StepStatus.PENDING.value


def _hand_to_fallback(step: StepState, agent: Agent, fallback: str, plan: Plan) -> None:
    """The step goes to ``agent``'s fallback, at once, with its retries afresh."""
    plan.events.append(
        (
            "step.fallback",
            {
                "step_id": step.id,
                "agent_id": agent.id,
                "fallback": fallback,
                "error_kind": step.error_kind,
            },
        )
    )
    step.ran_by = fallback
    step.agent_attempt = 0
    step.status = StepStatus.PENDING.value
    step.due_at = None


def _finish_succeeded(run: RunState, steps: list[StepState], now: datetime, plan: Plan) -> None:
    run.status = WorkflowStatus.SUCCEEDED.value
    run.output = steps[-1].output if steps else None
    run.finished_at = now
    plan.run_changed = True


def _finish_timed_out(run: RunState, steps: list[StepState], now: datetime, plan: Plan) -> None:
    """The run's deadline passed: it ends now, keeping what its finished steps produced. A call
    still under way is recorded when it returns; nothing follows it."""
    done = [s for s in steps if s.status == StepStatus.SUCCEEDED.value]
    run.status = WorkflowStatus.TIMED_OUT.value
    run.output = done[-1].output if done else None
    run.error = (
        f"the run's deadline passed with {len(done)} of {len(steps)} step(s) done; "
        "give the workflow a longer deadline_s or make its agents faster"
    )
    run.finished_at = now
    plan.run_changed = True


def _finish_failed(
    run: RunState, steps: list[StepState], failed: StepState, now: datetime, plan: Plan
) -> None:
    if failed.error_kind == CostLimitExceeded.kind:
        run.status = WorkflowStatus.BUDGET_EXCEEDED.value
        done = [s for s in steps if s.status == StepStatus.SUCCEEDED.value]
        run.output = done[-1].output if done else None  # what the finished steps produced
        run.error = f"step {failed.position + 1} ({failed.agent}) was not run: {failed.error}"
    else:
        run.status = WorkflowStatus.FAILED.value
        run.error = (
            f"step {failed.position + 1} ({failed.agent}) failed after {failed.attempt} "
            f"attempt(s): {failed.error_kind or 'error'}: {failed.error}"
        )
    run.finished_at = now
    plan.run_changed = True


def _due(step: StepState, now: datetime) -> bool:
    """A pending step may go unless it waits for a retry's due time."""
    return step.due_at is None or as_utc(step.due_at) <= now
