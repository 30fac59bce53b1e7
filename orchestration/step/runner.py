"""One attempt of one step, run by an agent worker: the stages of ``orchestration.step``, in
their order.

1. claim (``claim.py``): the fence on the step row; a delivery that is not the attempt's to run
   stops here (a request for a step the database does not have is dead-lettered);
2. admit (``admit.py``): the agent's circuit breaker, then the call's worst case held on its
   spend caps; a call turned away is recorded as not made, at no cost, and routed (5, 6);
3. call (``call.py``): the model under the agent's deadline; the breaker hears how it went;
4. record (``record.py``): result, trace, ledger and audit rows and the coordinator's decision,
   in one transaction;
5. settle (``settle.py``): once that commits, the call's real cost on the caps;
6. route (``route.py``): the cost watched, the attempt counted, the decision routed.

The step's span (``step <agent>``) holds stages 2 to 6 and says what the attempt came to. The
runner reaches a stage through one method of its own (``_claim``, ``_caps``, ``_call``,
``_record_and_decide_once``): the seams that tests stand in for.
"""

from __future__ import annotations

import structlog
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from bus.envelope import AgentMessage
from bus.publisher import Bus
from orchestration.anomalies import AnomalyWatch
from orchestration.breakers import Breakers
from orchestration.budget import Budget
from orchestration.coordinator import Coordinator
from orchestration.definitions import Agent
from orchestration.pricing import micro_to_usd
from orchestration.step.admit import Admission, Refusal
from orchestration.step.call import Call, ModelCalls, refused
from orchestration.step.claim import Attempt, Claims
from orchestration.step.record import Recorded, Records
from orchestration.step.route import Routing
from orchestration.step.settle import Settlement
from orchestration.step.tool_approvals import ToolApprovalChecks
from orchestration.step.tool_calls import ToolCalls
from orchestration.step.tool_loop import ToolLoop
from orchestration.step_observer import StepObserver
from orchestration.stray_requests import StrayRequests
from orchestration.team import Team
from storage.budget_store import Cap
from storage.settings import Settings
from storage.tool_ledger import ToolLedger
from workers import tracing
from workers.providers.base import ModelRequest
from workers.providers.registry import Providers

log = structlog.get_logger(__name__)


class StepRunner:
    """Runs the attempt each step request asks for: the model is called at most once per
    attempt, however often its request is delivered."""

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
        self._strays = strays
        self._claims = Claims(settings)
        self._admission = Admission(team, budget, breakers or Breakers(None), settings)
        self._calls = ModelCalls(team, providers)
        self._records = Records(team, bus, coordinator, settings.effective_database_url)
        self._settlement = Settlement(budget)
        self._routing = Routing(coordinator, anomalies, observer)
        ledger = ToolLedger(settings.effective_database_url)
        self._tool_loop = ToolLoop(
            self._admission,
            lambda agent, request: self._call(agent, request),
            self._records,
            self._settlement,
            ledger,
            ToolCalls(ledger, ToolApprovalChecks(settings.effective_database_url)),
            settings,
        )

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
        """Admit, make and record the call of one claimed attempt (for an agent with tools,
        the tool loop's calls, the last of which ends the attempt)."""
        caps = self._caps(this.message, this.agent)
        if this.agent.tools:
            return self._tool_attempt(this, request, caps)
        admitted = self._admission.admit(this, request, caps)
        if isinstance(admitted, Refusal):
            return self._not_called(this, request, admitted)
        call = self._call(this.agent, request)
        self._admission.after_call(this, admitted, call)
        recorded = self._records.record(this, call, self._record_and_decide_once)
        # Settled once its ledger row is committed, so that the counters are never below the
        # ledger, whenever Redis may lose its data (a rebuild from the ledger has the call).
        self._settlement.settle(this, call, caps)
        if recorded is not None:
            self._routing.route(this, call, recorded)
        return call

    def _tool_attempt(self, this: Attempt, request: ModelRequest, caps: list[Cap]) -> Call:
        ending = self._tool_loop.run(this, request, caps)
        if ending.refusal is not None:
            return self._not_called(ending.this, ending.request, ending.refusal)
        assert ending.call is not None
        if ending.lost:  # its lease ran out mid-loop: the sweep has given the attempt up
            return ending.call
        recorded = self._records.record(ending.this, ending.call, self._record_and_decide_once)
        self._settlement.settle(ending.this, ending.call, caps)
        if recorded is not None:
            self._routing.route(ending.this, ending.call, recorded)
        return ending.call

    def _not_called(self, this: Attempt, request: ModelRequest, refusal: Refusal) -> Call:
        """The breaker or a spend cap turned the call away: on record, at no cost."""
        log.warning("step.not_called", reason=refusal.kind, error=str(refusal))
        call = refused(request, refusal)
        recorded = self._records.record(this, call, self._record_and_decide_once)
        if recorded is not None:
            self._routing.route(this, call, recorded)
        return call

    def _caps(self, message: AgentMessage, agent: Agent) -> list[Cap]:
        return self._admission.caps(message, agent)

    def _claim(
        self, message: AgentMessage, step_id: str, attempt: int, agent: Agent
    ) -> tuple[Attempt, ModelRequest] | None:
        return self._claims.claim(message, step_id, attempt, agent)

    def _call(self, agent: Agent, request: ModelRequest) -> Call:
        return self._calls.call(agent, request)

    def _record_and_decide_once(self, this: Attempt, call: Call) -> Recorded:
        return self._records.once(this, call)


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
