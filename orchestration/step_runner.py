"""One attempt of one step, run by an agent worker.

1. claim: one statement, committed on its own, moves the attempt from dispatched to running (the
   fence that keeps a redelivered message from calling the model twice) and returns the prompt
   and the agent's earlier exchanges, which the coordinator composed when it dispatched;
2. admit: the agent's circuit breaker (``breakers.py``) and the spend caps (``budget.py``, which
   hold the call's worst case) may turn the call away; it is then recorded as not made;
3. call the model under the agent's deadline (kept on the wire: an answer that arrived is
   used); tell the breaker how it went;
4. record and decide: with the workflow row locked (and charged the call's cost), the result or
   the failure goes on the step row, the call's trace and its cost-ledger row are added, the
   request is stamped delivered, the agent's response is recorded on the bus's audit trail, and
   the coordinator decides what comes next, all in one transaction;
5. once it commits, settle the call's real cost against the caps (after the ledger row, so the
   Redis counters are never below the ledger they are rebuilt from), then route the messages
   the decision recorded.

The claim and the record ride out a database that went away (``storage.db_retry``).

Deciding here, rather than routing the response to the coordinator queue, saves a broker hop and
a transaction per step; the coordinator's code makes the decision either way, and the response
is on record as if it had travelled (published, then delivered in the same transaction).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from bus.envelope import AgentMessage, step_response
from bus.publisher import Bus
from orchestration.anomalies import AnomalyWatch
from orchestration.breakers import Breakers
from orchestration.budget import Budget
from orchestration.coordinator import Coordinator, Decision, lock_workflow, mark_delivered
from orchestration.definitions import Agent
from orchestration.planner import RunState
from orchestration.pricing import micro_to_usd
from orchestration.step.admit import Admission
from orchestration.step.call import Call, ModelCalls, ms, refused
from orchestration.step.claim import Attempt, Claims
from orchestration.step_observer import StepObserver
from orchestration.stray_requests import StrayRequests
from orchestration.team import Team
from storage import statements
from storage.budget_store import Cap
from storage.db_retry import retrying
from storage.errors import (
    BreakerOpen,
    CostLimitExceeded,
)
from storage.executor import transaction
from storage.models import WorkflowStatus, day_of, new_id, utcnow
from storage.settings import Settings
from workers import tracing
from workers.providers.base import ModelRequest
from workers.providers.registry import Providers

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class _Recorded:
    """What recording an attempt committed: the coordinator's decision, whether the attempt
    still held its step, and the run as it was locked."""

    decision: Decision
    held: bool
    run: RunState | None


class StepRunner:
    def __init__(
        self,
        team: Team,
        bus: Bus,
        coordinator: Coordinator,
        providers: Providers,
        settings: Settings,
        budget: Budget,
        anomalies: AnomalyWatch | None = None,
        breakers: Breakers | None = None,
        observer: StepObserver | None = None,
        strays: StrayRequests | None = None,
    ) -> None:
        """``observer`` hears of every attempt recorded (None: nobody does); ``strays``
        dead-letters requests for steps the database does not have (None: they are skipped)."""
        self._team = team
        self._budget = budget
        self._anomalies = anomalies
        self._bus = bus
        self._coordinator = coordinator
        self._providers = providers
        self._settings = settings
        self._url = settings.effective_database_url
        self._record_cost = statements.record_cost(self._url)
        self._observer = observer
        self._strays = strays
        self._claims = Claims(settings)
        self._admission = Admission(team, budget, breakers or Breakers(None), settings)
        self._calls = ModelCalls(team, providers)

    def run(self, message: AgentMessage) -> None:
        step_id = str(message.payload["step_id"])
        attempt = int(message.payload["attempt"])
        agent = self._team.agent(message.to[0])
        with structlog.contextvars.bound_contextvars(
            workflow_id=message.workflow_id, step_id=step_id, agent_id=agent.id, attempt=attempt
        ):
            claimed = self._claim(message, step_id, attempt, agent)
            if claimed is None:
                if self._strays is None or not self._strays.dead_letter_if_unknown(
                    message, step_id, agent.id
                ):
                    log.info(
                        "step.delivery_skipped", reason="attempt claimed, finished or superseded"
                    )
                return
            this, request = claimed
            with tracing.span(
                f"step {agent.id}",
                {
                    "workflow.id": message.workflow_id,
                    "workflow.name": message.payload.get("workflow"),
                    "step.id": step_id,
                    "step.attempt": attempt,
                    "agent.id": agent.id,
                    "agent.requested": this.requested_agent_id,
                    "messaging.message.id": message.id,
                },
                kind=SpanKind.CONSUMER,
            ) as step_span:
                call = self._attempt(this, request)
                _describe_step(step_span, call)

    def _attempt(self, this: Attempt, request: ModelRequest) -> Call:
        """Admit, make and record the call of one claimed attempt."""
        caps = self._caps(this.message, this.agent)
        admitted = self._admission.admit(this, request, caps)
        if isinstance(admitted, BreakerOpen | CostLimitExceeded):
            return self._not_called(this, request, admitted)
        call = self._call(this.agent, request)
        self._admission.after_call(this, admitted, call)
        call_id = this.call_id
        # Settled once its ledger row is committed, so that the counters are never below the
        # ledger, whenever Redis may lose its data (a rebuild from the ledger has the call).
        self._record_and_decide(
            this, call, settle=lambda: self._budget.settle(call_id, call.cost, caps)
        )
        return call

    def _not_called(
        self, this: Attempt, request: ModelRequest, refusal: BreakerOpen | CostLimitExceeded
    ) -> Call:
        """The breaker or a spend cap turned the call away: on record, at no cost."""
        log.warning("step.not_called", reason=refusal.kind, error=str(refusal))
        call = refused(request, refusal)
        self._record_and_decide(this, call)
        return call

    def _caps(self, message: AgentMessage, agent: Agent) -> list[Cap]:
        return self._admission.caps(message, agent)

    def _ledger(self, this: Attempt, call: Call) -> dict[str, object]:
        """The call's row in the cost ledger."""
        now = utcnow()
        return dict(
            id=this.call_id,
            team=self._team.name,
            workflow_id=str(this.message.workflow_id),
            workflow=str(this.message.payload.get("workflow") or ""),
            step_id=this.step_id,
            agent_id=this.agent.id,
            model=this.agent.model,
            attempt=this.number,
            cost_micro=call.cost,
            unknown=False,
            day=day_of(now),
            created_at=now,
        )

    def _watch_cost(self, run: RunState, message: AgentMessage) -> None:
        """Compare the run's cost so far with what its workflow type usually costs."""
        if self._anomalies is None:
            return
        try:
            self._anomalies.after_call(
                run.id, run.name, run.cost_micro, WorkflowStatus(run.status).finished
            )
        except Exception as exc:  # watching cost must never fail the step it watches
            log.warning("cost.anomaly_check_failed", error=str(exc))

    def _claim(
        self, message: AgentMessage, step_id: str, attempt: int, agent: Agent
    ) -> tuple[Attempt, ModelRequest] | None:
        return self._claims.claim(message, step_id, attempt, agent)

    def _call(self, agent: Agent, request: ModelRequest) -> Call:
        return self._calls.call(agent, request)

    def _record_and_decide(
        self, this: Attempt, call: Call, settle: Callable[[], None] | None = None
    ) -> None:
        """Record the call and decide what follows, riding out a database that went away: a
        transaction that failed is run again, unless its commit did land (the attempt's trace is
        there), in which case the sweep routes what it recorded. ``settle`` (the call's cost on
        its caps) runs once the record is committed, before what it decided is routed."""
        first = True
        recorded: list[_Recorded] = []

        def record() -> None:
            nonlocal first
            if not first and self._recorded(this.step_id, this.number):
                log.warning("step.recorded_before_the_connection_was_lost")
                return
            first = False
            recorded.append(self._record_and_decide_once(this, call))

        retrying(record, "record the step's result")
        if settle is not None:
            settle()
        if recorded:
            self._after_record(this, call, recorded[0])

    def _recorded(self, step_id: str, attempt: int) -> bool:
        with transaction(self._url) as tx:
            found = tx.run(statements.TRACE_OF_ATTEMPT, {"w_step": step_id, "w_attempt": attempt})
            return found.one_or_none() is not None

    def _record_and_decide_once(self, this: Attempt, call: Call) -> _Recorded:
        """One transaction: the result, its trace, its ledger row, the response on the bus and
        the coordinator's decision."""
        message, step_id, attempt, agent = this.message, this.step_id, this.number, this.agent
        workflow_id = str(message.workflow_id)
        decision = Decision()
        with transaction(self._url) as tx:
            run = lock_workflow(tx, workflow_id, add_cost=call.cost)
            statement, params = _step_update(call)
            # Zero rows when this attempt no longer holds the step: its lease ran out meanwhile.
            held = tx.run(statement, {**params, "w_id": step_id, "w_attempt": attempt}).rowcount
            tx.run(statements.INSERT_TRACE, _trace(this, call))
            if call.made:
                tx.run(self._record_cost, self._ledger(this, call))
            mark_delivered(tx, message.id)
            # The agent's answer goes on record like every message; the coordinator acts on it
            # in this very transaction, so it is delivered as it is recorded.
            self._bus.record(
                tx,
                step_response(
                    agent_id=agent.id,
                    workflow_id=workflow_id,
                    step_id=step_id,
                    attempt=attempt,
                    priority=message.priority,
                    outcome=call.outcome,
                    cost_micro=call.cost,
                ),
                delivered_at=utcnow(),
            )
            if held and run is not None:
                decision = self._coordinator.decide(tx, run)
        return _Recorded(decision, bool(held), run)

    def _after_record(self, this: Attempt, call: Call, recorded: _Recorded) -> None:
        """Once the record is committed: watch the run's cost, count the attempt, route what the
        coordinator decided."""
        message, agent, run = this.message, this.agent, recorded.run
        if run is not None and call.made:
            self._watch_cost(run, message)
        if self._observer is not None:  # every attempt recorded, fenced off or not
            self._observer.attempt_recorded(
                agent_id=agent.id,
                model=agent.model,
                outcome=call.outcome,
                usage=call.usage,
                cost_micro=call.cost,
                latency_s=call.latency_ms / 1000 if call.made else None,
            )
        if not recorded.held:
            # The attempt was given up on; the call is on record (trace, cost) all the same.
            log.warning(
                "step.result_fenced_off", outcome=call.outcome, cost_usd=micro_to_usd(call.cost)
            )
            return
        self._coordinator.after_commit(recorded.decision)
        log.info(
            "step.finished",
            outcome=call.outcome,
            latency_ms=round(call.latency_ms, 1),
            input_tokens=call.usage.input_tokens,
            output_tokens=call.usage.output_tokens,
            cost_usd=micro_to_usd(call.cost),
            error=None if call.error is None else str(call.error),
        )


def _step_update(call: Call) -> tuple[Any, dict[str, object]]:
    """The fenced update of the step row and its parameters. Tokens and cost add up over
    attempts, failed ones included."""
    usage = call.usage
    params: dict[str, object] = {
        "add_input": usage.input_tokens,
        "add_output": usage.output_tokens,
        "add_cache_creation": usage.cache_creation_input_tokens,
        "add_cache_creation_1h": usage.cache_creation_1h_input_tokens,
        "add_cache_read": usage.cache_read_input_tokens,
        "add_cost": call.cost,
    }
    if call.error is None and call.response is not None:
        return statements.STEP_SUCCEEDED, params | {
            "output": call.response.text,
            "finished_at": utcnow(),
        }
    return statements.STEP_ATTEMPT_FAILED, params | {
        "error": str(call.error),
        "error_kind": call.outcome,
        "error_retryable": bool(getattr(call.error, "retryable", False)),
        "retry_after_s": getattr(call.error, "retry_after_s", None),
    }


def _describe_step(span: Span, call: Call) -> None:
    """What the attempt came to, on its step span."""
    if not span.is_recording():  # tracing is off
        return
    span.set_attributes(
        {
            "agent.tokens": call.usage.total,
            "agent.cost": micro_to_usd(call.cost),
            "agentyard.outcome": call.outcome,
        }
    )
    if call.error is not None:
        span.set_status(Status(StatusCode.ERROR, f"{call.outcome}: {call.error}"))


def _trace(this: Attempt, call: Call) -> dict[str, object]:
    """The trace row of one call (a Core insert: no SQLModel object on the hot path)."""
    response = call.response
    agent = this.agent
    ids = tracing.current_ids()  # None when tracing is off: the run's trace id all the same
    workflow_id = str(this.message.workflow_id)
    return dict(
        trace_id=ids[0] if ids else f"{tracing.trace_id_of(workflow_id):032x}",
        span_id=ids[1] if ids else None,
        id=new_id(),
        workflow_id=workflow_id,
        step_id=this.step_id,
        parent_step_id=this.parent_step_id,
        agent_id=agent.id,
        requested_agent_id=None if this.requested_agent_id == agent.id else this.requested_agent_id,
        model=agent.model,
        attempt=this.number,
        system_prompt=call.request.system,
        prompt=call.request.messages[-1].content,
        output=response.text if response is not None else None,
        reasoning=response.reasoning if response is not None else None,
        outcome=call.outcome,
        error=None if call.error is None else str(call.error),
        input_tokens=call.usage.input_tokens,
        output_tokens=call.usage.output_tokens,
        cache_creation_tokens=call.usage.cache_creation_input_tokens,
        cache_creation_1h_tokens=call.usage.cache_creation_1h_input_tokens,
        cache_read_tokens=call.usage.cache_read_input_tokens,
        cost_micro=call.cost,
        latency_ms=call.latency_ms,
        wire_ms=ms(response.wire_s if response is not None else None),
        late=call.late,
        started_at=call.started,
        finished_at=utcnow(),
    )
