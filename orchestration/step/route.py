"""The route stage: what follows an attempt's record, once it has committed.

In this order: the run's cost is compared with what its workflow type usually costs (for a call
made, on a run that was there to lock; watching cost never fails the step it watches); the
observer hears of the attempt, fenced off or not; then, if the attempt still held its step, the
messages the coordinator's decision recorded are routed (they are in the database already:
audit before route) and the step is logged finished. An attempt fenced off (given up on while
it ran) routes nothing; its call is on record, trace and cost, all the same.
"""

from __future__ import annotations

import structlog

from orchestration.anomalies import AnomalyWatch
from orchestration.coordinator import Coordinator
from orchestration.pricing import micro_to_usd
from orchestration.step.call import Call
from orchestration.step.claim import Attempt
from orchestration.step.record import Recorded
from orchestration.step_observer import StepObserver
from orchestration.workflow.state import RunState
from storage.models import WorkflowStatus

log = structlog.get_logger(__name__)


class Routing:
    def __init__(
        self,
        coordinator: Coordinator,
        anomalies: AnomalyWatch | None,
        observer: StepObserver | None,
    ) -> None:
        self._coordinator = coordinator
        self._anomalies = anomalies
        self._observer = observer

    def route(self, this: Attempt, call: Call, recorded: Recorded) -> None:
        """Watch the run's cost, count the attempt, route what the coordinator decided."""
        agent, run = this.agent, recorded.run
        if run is not None and call.made:
            self._watch_cost(run)
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

    def _watch_cost(self, run: RunState) -> None:
        """Compare the run's cost so far with what its workflow type usually costs."""
        if self._anomalies is None:
            return
        try:
            self._anomalies.after_call(
                run.id, run.name, run.cost_micro, WorkflowStatus(run.status).finished
            )
        except Exception as exc:  # watching cost must never fail the step it watches
            log.warning("cost.anomaly_check_failed", error=str(exc))
