"""The call stage: the model, asked under the agent's deadline.

It promises that an answer that arrived is used: the provider keeps to the agent's deadline on
the wire, and an answer that came is kept however late the worker was to read it (never paid
for and dropped; ``step.late_answer_used`` says so). An error agentyard knows (the provider's,
or configuration no retry can mend) is what the call came to, not an exception: the stage
returns a ``Call`` either way, with the usage billed and its cost at the team's prices. The
call is the ``chat <model>`` span, in the GenAI semantic convention's terms.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime

import structlog
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from orchestration.definitions import Agent
from orchestration.team import Team
from storage.errors import (
    AgentyardError,
    BreakerOpen,
    CostLimitExceeded,
    ProviderError,
    ToolApprovalNeeded,
    ToolOutcomeUnknown,
    ToolTurnsExhausted,
)
from storage.models import utcnow
from workers import tracing
from workers.providers.base import ModelRequest, ModelResponse, Usage
from workers.providers.registry import Providers, provider_name

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Call:
    """What happened in one model call."""

    request: ModelRequest
    response: ModelResponse | None
    error: AgentyardError | None
    usage: Usage
    cost: int
    started: datetime
    latency_ms: float
    late: bool = False  # the answer came after the agent's deadline, and was used

    @property
    def made(self) -> bool:
        """Whether the model was called (a spend cap or the breaker may have refused the call)."""
        return not isinstance(self.error, CostLimitExceeded | BreakerOpen)

    @property
    def outcome(self) -> str:
        if self.error is None:
            return "succeeded"
        if isinstance(
            self.error,
            ProviderError
            | CostLimitExceeded
            | BreakerOpen
            | ToolOutcomeUnknown
            | ToolApprovalNeeded
            | ToolTurnsExhausted,
        ):
            return self.error.kind
        return "configuration_error"


def refused(request: ModelRequest, refusal: CostLimitExceeded | BreakerOpen) -> Call:
    """A call not made: a spend cap or the breaker refused it. On record like any attempt, at no
    cost."""
    now = utcnow()
    return Call(request, None, refusal, Usage(), 0, now, 0.0)


def ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


class ModelCalls:
    def __init__(self, team: Team, providers: Providers) -> None:
        self._team = team
        self._providers = providers

    def call(self, agent: Agent, request: ModelRequest) -> Call:
        started = utcnow()
        clock = time.perf_counter()
        response: ModelResponse | None = None
        error: AgentyardError | None = None
        with tracing.span(
            f"chat {agent.model}",
            {
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": provider_name(agent.model),
                "gen_ai.system": provider_name(agent.model),
                "gen_ai.request.model": agent.model,
                "gen_ai.request.max_tokens": request.max_tokens,
                "agent.id": agent.id,
            },
            kind=SpanKind.CLIENT,
        ) as chat_span:
            try:
                # The provider keeps to the agent's deadline on the wire; an answer that came
                # is used, however late the worker was to read it (never paid for and dropped).
                response = self._providers.for_model(agent.model).complete(request)
            except AgentyardError as exc:  # provider errors, and configuration no retry can mend
                error = exc
            _describe_model_call(chat_span, response, error)
        latency_s = time.perf_counter() - clock
        usage = response.usage if response is not None else Usage()
        late = response is not None and latency_s > agent.timeout_s
        if late:
            log.warning(
                "step.late_answer_used",
                latency_ms=round(latency_s * 1000, 1),
                wire_ms=ms(response.wire_s if response is not None else None),
                deadline_s=agent.timeout_s,
            )
        return Call(
            request=request,
            response=response,
            error=error,
            usage=usage,
            cost=self._team.prices.cost_micro(agent.model, usage),
            started=started,
            latency_ms=latency_s * 1000,
            late=late,
        )


def _describe_model_call(
    span: Span, response: ModelResponse | None, error: AgentyardError | None
) -> None:
    """The GenAI semantic convention's view of a model call, on its span."""
    if not span.is_recording():  # tracing is off
        return
    if response is not None:
        usage = response.usage
        span.set_attributes(
            {
                "gen_ai.response.model": response.model,
                "gen_ai.usage.input_tokens": usage.input_tokens,
                "gen_ai.usage.output_tokens": usage.output_tokens,
                "gen_ai.usage.cache_read.input_tokens": usage.cache_read_input_tokens,
                "gen_ai.usage.cache_creation.input_tokens": usage.cache_creation_input_tokens,
            }
        )
        if response.stop_reason:
            span.set_attribute("gen_ai.response.finish_reasons", [response.stop_reason])
    if error is not None:
        span.set_attribute("error.type", getattr(error, "kind", type(error).__name__))
        span.set_status(Status(StatusCode.ERROR, str(error)))
