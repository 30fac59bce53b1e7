"""A step: one call of an agent, and what follows each of its attempts.

A step is made when its node becomes ready, its prompt (the request, a summary of what came
before, and what it is given) and its agent's earlier exchanges composed then, once, so that the
worker that claims it reads one row. Then, for each attempt:

- dispatched: a request goes on the agent's queue;
- ``attempt_failed``: retried on the same agent after a backoff, handed to the agent's fallback,
  or failed for good. A call refused by a spend cap is tried again only while the cap's room is
  held by calls under way (it may come back); a call the breaker turned away waits for it, or
  goes to the fallback, and is not counted as an attempt;
- ``pending`` and due: dispatched again;
- ``pending``, its last attempt stopped at a tool call that waits for a person's approval
  (error kind ``tool_approval_needed``, ``waits_for_approval``): not dispatched until the
  approval is decided; the wait spends no retry.

A step that failed for good fails its frame (``failure_of`` says how).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from bus.envelope import request_step
from orchestration.context import HISTORY_EXCHANGES
from orchestration.context_budget import LocalEstimate, TokenCounter
from orchestration.definitions import Agent
from orchestration.guards.detect import Classifier, RuleClassifier
from orchestration.retry import Backoff
from orchestration.team import Team
from orchestration.workflow.checks import CheckResult, refusal
from orchestration.workflow.state import Failure, Plan, RunState, StepState
from storage.errors import (
    BreakerOpen,
    CostLimitExceeded,
    ToolApprovalNeeded,
    ToolOutcomeUnknown,
    ToolTurnsExhausted,
    ValidationFailed,
)
from storage.models import StepStatus, WorkflowStatus, as_utc

VALIDATION_FAILED = "validation_failed"  # a step's error kind: no one left to ask again
INJECTION_SUSPECTED = "injection_suspected"  # a step's error kind: quarantined, not run
CONTEXT_TOO_LARGE = "context_too_large"  # a step's error kind: its input could not fit, not run


@dataclass(frozen=True, slots=True)
class Rules:
    """What a run's decisions need from the team and the settings."""

    team: Team
    backoff: Backoff
    dispatch_timeout_s: float
    classifier: Classifier = field(default_factory=RuleClassifier)  # finds injection attempts
    counter: TokenCounter = field(default_factory=LocalEstimate)  # fits prompts to budgets


def dispatch(
    run: RunState,
    step: StepState,
    now: datetime,
    rules: Rules,
    plan: Plan,
    approve_untrusted_side_effects: bool = False,
) -> None:
    """Send the step's next attempt to its agent (telling it, with
    ``approve_untrusted_side_effects``, that its calls of tools with side effects from an
    untrusted context wait for a person's approval)."""
    step.ran_by = step.agent
    step.attempt += 1
    step.agent_attempt += 1
    step.status = StepStatus.DISPATCHED.value
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
        approve_untrusted_side_effects=approve_untrusted_side_effects,
    )
    step.request_id = request.id
    plan.messages.append(request)
    plan.events.append(
        ("step.dispatched", {"step_id": step.id, "agent_id": step.agent, "attempt": step.attempt})
    )
    if run.status == WorkflowStatus.PENDING.value:
        run.status = WorkflowStatus.RUNNING.value
        plan.run_changed = True


def after_failed_attempt(step: StepState, now: datetime, rules: Rules, plan: Plan) -> None:
    """Retry on the same agent, move to its fallback, or give up."""
    agent = rules.team.agent(step.agent)
    if step.error_kind == BreakerOpen.kind:
        _while_breaker_open(step, agent, now, plan)
        return
    if step.error_kind == ToolApprovalNeeded.kind:  # not a failure: it waits for a person
        step.agent_attempt = max(0, step.agent_attempt - 1)
        step.status = StepStatus.PENDING.value
        step.due_at = None
        return
    retry = step.error_retryable and step.agent_attempt <= agent.max_retries
    if step.error_kind in (ToolOutcomeUnknown.kind, ToolTurnsExhausted.kind):
        step.status = StepStatus.FAILED.value  # for a person: the conversation cannot go on
        step.finished_at = now
    elif step.error_kind == CostLimitExceeded.kind and not retry:
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


def waits_for_approval(step: StepState) -> bool:
    """Whether the step waits for a person to decide on one of its tool calls."""
    return step.status == StepStatus.PENDING.value and step.error_kind == ToolApprovalNeeded.kind


def due(step: StepState, now: datetime) -> bool:
    """A pending step may go unless it waits for a retry's due time."""
    return step.due_at is None or as_utc(step.due_at) <= now


def refused(
    step: StepState, result: CheckResult, max_reasks: int, now: datetime, rules: Rules, plan: Plan
) -> bool:
    """A check refused the step's answer: ask the same agent again with the reason (while it has
    re-asks left), else its fallback, else fail the step. The refused answer and the reason go
    to the agent as the last exchange and the new prompt. True if someone is asked again (the
    caller dispatches), False if the step failed."""
    agent = rules.team.agent(step.agent)
    exchange = [step.prompt or "", step.output or ""]
    if step.reasks < max_reasks:
        step.reasks += 1
        plan.events.append(
            ("step.reasked", {"step_id": step.id, "check": result.name, "reasks": step.reasks})
        )
    elif agent.fallback is not None:
        _hand_to_fallback(step, agent, agent.fallback, plan)
        step.reasks = 0
    else:
        step.status = StepStatus.FAILED.value
        step.error_kind = VALIDATION_FAILED
        step.error = f"the check {result.name} refused its answer: {result.reason}"
        step.finished_at = now
        return False
    step.history = [*(step.history or []), exchange][-HISTORY_EXCHANGES:]
    step.prompt = refusal(result)
    step.output = step.data = None
    step.finished_at = None
    step.status = StepStatus.PENDING.value
    return True


def failure_of(step: StepState) -> Failure:
    """Why a step that failed for good failed, as its frame and the run say it."""
    if step.error_kind in (INJECTION_SUSPECTED, CONTEXT_TOO_LARGE):
        return Failure("error", f"{step.error} (step {step.position + 1}, {step.agent})")
    if step.error_kind == VALIDATION_FAILED:
        return Failure(
            "error",
            f"{ValidationFailed.__name__}: step {step.position + 1} ({step.agent}): {step.error}",
        )
    if step.error_kind == CostLimitExceeded.kind:
        return Failure(
            "budget", f"step {step.position + 1} ({step.agent}) was not run: {step.error}"
        )
    return Failure(
        "error",
        f"step {step.position + 1} ({step.agent}) failed after {step.attempt} attempt(s): "
        f"{step.error_kind or 'error'}: {step.error}",
    )


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
