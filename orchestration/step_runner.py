"""One attempt of one step, run by an agent worker.

In order: skip a stale or repeated delivery; claim the attempt (a compare-and-set on the step row:
the fence that keeps a redelivered message from calling the model twice); build the context; call
the model under the agent's deadline; price the usage; write the result, the trace and the
``advance`` message in ONE transaction; route the message.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta

import structlog
from sqlalchemy import update
from sqlmodel import col, select

from bus.envelope import AgentMessage, advance
from bus.publisher import Bus
from orchestration.context import EarlierStep, Exchange, build_messages, compose_prompt
from orchestration.definitions import Agent
from orchestration.pricing import cost_micro
from orchestration.team import Team
from storage.db import session_scope
from storage.errors import AgentyardError, ProviderError, ProviderTimeout
from storage.models import StepRow, StepStatus, TraceRow, WorkflowRow, utcnow
from storage.settings import Settings
from workers.providers.base import ModelRequest, ModelResponse, Usage
from workers.providers.registry import Providers

log = structlog.get_logger(__name__)


class StepRunner:
    def __init__(self, team: Team, bus: Bus, providers: Providers, settings: Settings) -> None:
        self._team = team
        self._bus = bus
        self._providers = providers
        self._settings = settings
        self._url = settings.effective_database_url

    def run(self, message: AgentMessage) -> None:
        step_id = str(message.payload["step_id"])
        attempt = int(message.payload["attempt"])
        agent = self._team.agent(message.to[0])
        structlog.contextvars.bind_contextvars(
            workflow_id=message.workflow_id, step_id=step_id, agent_id=agent.id, attempt=attempt
        )
        try:
            if not self._claim(step_id, attempt, agent):
                return
            self._run_claimed(step_id, attempt, agent)
        finally:
            structlog.contextvars.unbind_contextvars(
                "workflow_id", "step_id", "agent_id", "attempt"
            )

    def _claim(self, step_id: str, attempt: int, agent: Agent) -> bool:
        now = utcnow()
        with session_scope(self._url) as session:
            claimed = session.exec(
                update(StepRow)
                .where(
                    col(StepRow.id) == step_id,
                    col(StepRow.attempt) == attempt,
                    col(StepRow.status) == StepStatus.DISPATCHED.value,
                )
                .values(
                    status=StepStatus.RUNNING.value,
                    started_at=now,
                    lease_until=now
                    + timedelta(seconds=agent.timeout_s + self._settings.lease_margin_s),
                )
            ).rowcount
        if not claimed:
            log.info(
                "step.delivery_skipped", reason="attempt already claimed, finished or superseded"
            )
        return bool(claimed)

    def _run_claimed(self, step_id: str, attempt: int, agent: Agent) -> None:
        with session_scope(self._url) as session:
            step = session.get_one(StepRow, step_id)
            workflow = session.get_one(WorkflowRow, step.workflow_id)
            earlier = [
                EarlierStep(s.position, s.ran_by or s.agent_id, s.output or "")
                for s in session.exec(
                    select(StepRow)
                    .where(
                        StepRow.workflow_id == step.workflow_id,
                        col(StepRow.position) < step.position,
                        StepRow.status == StepStatus.SUCCEEDED.value,
                    )
                    .order_by(col(StepRow.position))
                ).all()
            ]
            history = [
                Exchange(t.prompt, t.output or "")
                for t in reversed(
                    session.exec(
                        select(TraceRow)
                        .where(
                            TraceRow.workflow_id == step.workflow_id,
                            TraceRow.agent_id == agent.id,
                            TraceRow.outcome == "succeeded",
                        )
                        .order_by(col(TraceRow.finished_at).desc())
                        .limit(5)
                    ).all()
                )
            ]
        prompt = compose_prompt(workflow.input, step.input or "", step.position, earlier)
        request = ModelRequest(
            model=agent.model,
            system=agent.system_prompt,
            messages=build_messages(history, prompt),
            max_tokens=agent.max_tokens,
            timeout_s=agent.timeout_s,
            request_key=f"{step_id}:{attempt}",
        )
        started = utcnow()
        clock = time.perf_counter()
        response: ModelResponse | None = None
        error: AgentyardError | None = None
        try:
            response = self._providers.for_model(agent.model).complete(request)
            if time.perf_counter() - clock > agent.timeout_s:
                # The SDK's timeout bounds each read, not the whole call: enforce the deadline here.
                raise _deadline_exceeded(agent)
        except ProviderError as exc:
            error = exc
        except AgentyardError as exc:  # configuration problems: another attempt will not help
            error = exc
        latency_ms = (time.perf_counter() - clock) * 1000
        usage = response.usage if response is not None else Usage()
        cost = cost_micro(agent.model, usage)
        self._record(
            step,
            workflow,
            agent,
            attempt,
            request,
            response,
            error,
            usage,
            cost,
            started,
            latency_ms,
        )

    def _record(
        self,
        step: StepRow,
        workflow: WorkflowRow,
        agent: Agent,
        attempt: int,
        request: ModelRequest,
        response: ModelResponse | None,
        error: AgentyardError | None,
        usage: Usage,
        cost: int,
        started: datetime,
        latency_ms: float,
    ) -> None:
        now = utcnow()
        outcome = "succeeded" if error is None else _kind(error)
        values: dict[str, object] = {
            "input_tokens": col(StepRow.input_tokens) + usage.input_tokens,
            "output_tokens": col(StepRow.output_tokens) + usage.output_tokens,
            "cache_creation_tokens": col(StepRow.cache_creation_tokens)
            + usage.cache_creation_input_tokens,
            "cache_read_tokens": col(StepRow.cache_read_tokens) + usage.cache_read_input_tokens,
            "cost_micro": col(StepRow.cost_micro) + cost,
            "lease_until": None,
        }
        if error is None and response is not None:
            values |= {
                "status": StepStatus.SUCCEEDED.value,
                "output": response.text,
                "error": None,
                "error_kind": None,
                "finished_at": now,
            }
        else:
            values |= {
                "status": StepStatus.ATTEMPT_FAILED.value,
                "error": str(error),
                "error_kind": outcome,
                "error_retryable": bool(getattr(error, "retryable", False)),
                "retry_after_s": getattr(error, "retry_after_s", None),
            }
        notice = advance(
            sender=agent.id, workflow_id=workflow.id, priority=workflow.priority, step_id=step.id
        )
        with session_scope(self._url) as session:
            fenced = session.exec(
                update(StepRow)
                .where(
                    col(StepRow.id) == step.id,
                    col(StepRow.attempt) == attempt,
                    col(StepRow.status) == StepStatus.RUNNING.value,
                )
                .values(**values)
            ).rowcount
            session.add(
                TraceRow(
                    workflow_id=workflow.id,
                    step_id=step.id,
                    agent_id=agent.id,
                    model=agent.model,
                    attempt=attempt,
                    system_prompt=request.system,
                    prompt=request.messages[-1].content,
                    output=response.text if response is not None else None,
                    reasoning=response.reasoning if response is not None else None,
                    outcome=outcome,
                    error=None if error is None else str(error),
                    input_tokens=usage.input_tokens,
                    output_tokens=usage.output_tokens,
                    cache_creation_tokens=usage.cache_creation_input_tokens,
                    cache_read_tokens=usage.cache_read_input_tokens,
                    cost_micro=cost,
                    latency_ms=latency_ms,
                    started_at=started,
                    finished_at=now,
                )
            )
            if fenced:
                self._bus.record(session, notice)
        if not fenced:
            # Our lease ran out and the attempt was given up on; the call is on record all the same.
            log.warning("step.result_fenced_off", outcome=outcome, cost_usd=cost / 1e6)
            return
        self._bus.route([notice])
        log.info(
            "step.finished",
            outcome=outcome,
            latency_ms=round(latency_ms, 1),
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cost_usd=cost / 1e6,
            error=None if error is None else str(error),
        )


def _kind(error: AgentyardError) -> str:
    return error.kind if isinstance(error, ProviderError) else "configuration_error"


def _deadline_exceeded(agent: Agent) -> ProviderError:
    return ProviderTimeout(f"agent {agent.id!r} exceeded its {agent.timeout_s}s deadline")
