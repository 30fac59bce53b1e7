"""OpenTelemetry for agentyard: one trace per workflow run, across every worker process.

The trace of a run is named by the run itself: its trace id is the run's id (a UUID is 128
bits, as a trace id is), and the span of the workflow has an id derived from it. Any process
can therefore name the workflow's span without asking anyone, and a message about a run
carries the workflow span as its parent in the W3C ``traceparent`` header. The span of the
message that caused it (a step whose result led to the next dispatch) travels beside it, in
``agentyard-caused-by``, and becomes a link.

The spans:

- ``workflow <name>``: from the run's submission to its end. A run outlives any one process,
  so this span is emitted by whichever process finishes the run, with the run's start time and
  the preset ids (``emit_workflow_span``);
- ``submit <name>``: the submission, a child of the workflow span, linked to the caller's span
  when the caller was inside one;
- ``step <agent>``: one attempt of one step, in the agent's worker, a child of the workflow span;
- ``chat <model>``: the model call inside it, with the GenAI semantic convention attributes;
- ``advance <name>``: the coordinator looking at a run again (a retry came due, a sweep).

Spans are exported over OTLP/HTTP when ``AGENTYARD_OTEL_ENDPOINT`` (or the standard
``OTEL_EXPORTER_OTLP_ENDPOINT``) is set; a tracer provider the application installed itself
(``trace.set_tracer_provider``) is used as it is. Otherwise tracing is off and costs next to
nothing; log lines and trace rows still carry the run's trace id (known from the run's id).
"""

from __future__ import annotations

import contextvars
import hashlib
import os
import socket
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Tracer as SdkTracer
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator
from opentelemetry.trace import Link, NonRecordingSpan, Span, SpanContext, SpanKind, TraceFlags
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from storage.settings import Settings

TRACER_NAME = "agentyard"
TRACEPARENT = "traceparent"
CAUSED_BY = "agentyard-caused-by"

_propagator = TraceContextTextMapPropagator()
_CAUSED_BY_KEY = otel_context.create_key("agentyard-caused-by")
_lock = threading.Lock()
_provider: trace.TracerProvider | None = None  # agentyard's own, when it made one
_preset: contextvars.ContextVar[tuple[int, int] | None] = contextvars.ContextVar(
    "agentyard_preset_span_ids", default=None
)


class _PresetIds(IdGenerator):
    """Random ids, except while a span with known ids (a workflow's) is being started."""

    def __init__(self, inner: IdGenerator | None = None) -> None:
        self._inner = inner or RandomIdGenerator()

    def generate_span_id(self) -> int:
        preset = _preset.get()
        return preset[1] if preset is not None else self._inner.generate_span_id()

    def generate_trace_id(self) -> int:
        preset = _preset.get()
        return preset[0] if preset is not None else self._inner.generate_trace_id()


# -- set-up ----------------------------------------------------------------------------------------


def configure_tracing(settings: Settings) -> None:
    """Export this process's spans when the settings name an endpoint; once per process (later
    calls, and an application's own tracer provider, leave things as they are). Without an
    endpoint or a provider of the application's, tracing is off: spans cost next to nothing, and
    messages still carry their run's trace context."""
    global _provider
    with _lock:
        if _provider is None and settings.otel_endpoint and not _has_application_provider():
            _provider = build_provider(settings)


def build_provider(settings: Settings) -> TracerProvider:
    """A tracer provider that exports over OTLP/HTTP when the settings name an endpoint."""
    host = socket.gethostname()
    provider = TracerProvider(
        resource=Resource.create(
            {
                "service.name": settings.otel_service_name,
                "service.instance.id": f"{host}:{os.getpid()}",
                "host.name": host,
                "process.pid": os.getpid(),
            }
        ),
        id_generator=_PresetIds(),
    )
    if settings.otel_endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(
            BatchSpanProcessor(OTLPSpanExporter(endpoint=traces_url(settings.otel_endpoint)))
        )
    return provider


def use_provider(provider: trace.TracerProvider | None) -> None:
    """Send agentyard's spans to ``provider`` (tests hand in one with an in-memory exporter);
    None goes back to the global provider."""
    global _provider
    with _lock:
        _provider = provider


def traces_url(endpoint: str) -> str:
    """The OTLP/HTTP traces URL of a collector's base endpoint, as OTEL_EXPORTER_OTLP_ENDPOINT
    is meant (``http://collector:4318`` -> ``http://collector:4318/v1/traces``)."""
    endpoint = endpoint.rstrip("/")
    return endpoint if endpoint.endswith("/v1/traces") else f"{endpoint}/v1/traces"


def _has_application_provider() -> bool:
    return not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)


_cached: tuple[trace.TracerProvider, trace.Tracer] | None = None


def tracer() -> trace.Tracer:
    """agentyard's tracer, from its own provider or the application's."""
    global _cached
    provider = _provider or trace.get_tracer_provider()
    cached = _cached
    if cached is not None and cached[0] is provider:
        return cached[1]
    found = provider.get_tracer(TRACER_NAME)
    if isinstance(found, SdkTracer) and not isinstance(found.id_generator, _PresetIds):
        # An application's own provider: keep its ids, and let workflow spans have theirs.
        found.id_generator = _PresetIds(found.id_generator)
    if not isinstance(found, trace.ProxyTracer):  # a proxy waits for the real provider
        _cached = (provider, found)
    return found


# -- a run's trace ---------------------------------------------------------------------------------


def trace_id_of(workflow_id: str) -> int:
    """The trace id of a run: its id, read as 128 bits (any other string is hashed)."""
    hex_digits = workflow_id.replace("-", "")
    if len(hex_digits) == 32:
        try:
            value = int(hex_digits, 16)
        except ValueError:
            value = 0
        if value:
            return value
    return int.from_bytes(hashlib.sha256(workflow_id.encode()).digest()[:16], "big") or 1


def workflow_span_id(workflow_id: str) -> int:
    """The span id of a run's workflow span."""
    digest = hashlib.sha256(b"agentyard-workflow:" + workflow_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") or 1


def workflow_context(workflow_id: str) -> SpanContext:
    return SpanContext(
        trace_id=trace_id_of(workflow_id),
        span_id=workflow_span_id(workflow_id),
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
    )


def hex_ids(context: SpanContext) -> tuple[str, str] | None:
    """(trace id, span id) in hex, as trace rows and logs carry them; None for no span."""
    if not context.is_valid:
        return None
    return f"{context.trace_id:032x}", f"{context.span_id:016x}"


def current_ids() -> tuple[str, str] | None:
    """The ids of the span being recorded here; None with tracing off."""
    return hex_ids(trace.get_current_span().get_span_context()) if enabled() else None


# -- across processes ------------------------------------------------------------------------------


def headers_for(workflow_id: str | None) -> dict[str, str]:
    """The trace context a message carries: its run's workflow span as the parent (or, for a
    message about no run, the sender's span), and the sender's span as what caused it."""
    sender = trace.get_current_span().get_span_context()
    parent = workflow_context(workflow_id) if workflow_id else sender
    headers: dict[str, str] = {}
    if parent.is_valid:
        headers[TRACEPARENT] = _traceparent(parent)
    if sender.is_valid and sender.span_id != parent.span_id:
        headers[CAUSED_BY] = _traceparent(sender)
    return headers


@contextmanager
def continued(headers: Mapping[str, Any] | None, workflow_id: str | None) -> Iterator[None]:
    """Run the block in the trace context a message brought (its run's workflow span when the
    headers were lost on the way)."""
    carrier = {k: v for k, v in (headers or {}).items() if isinstance(v, str)}
    ctx = _propagator.extract({TRACEPARENT: carrier.get(TRACEPARENT, "")})
    if not trace.get_current_span(ctx).get_span_context().is_valid:
        if not workflow_id:
            yield
            return
        ctx = trace.set_span_in_context(NonRecordingSpan(workflow_context(workflow_id)))
    caused_by = carrier.get(CAUSED_BY)
    if caused_by:
        sender = trace.get_current_span(_propagator.extract({TRACEPARENT: caused_by}))
        if sender.get_span_context().is_valid:
            ctx = otel_context.set_value(_CAUSED_BY_KEY, sender.get_span_context(), ctx)
    token = otel_context.attach(ctx)
    try:
        yield
    finally:
        otel_context.detach(token)


def _traceparent(context: SpanContext) -> str:
    """The W3C ``traceparent`` header of a span (version 00)."""
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"


def _caused_by_links() -> list[Link]:
    caused_by = otel_context.get_value(_CAUSED_BY_KEY)
    if isinstance(caused_by, SpanContext):
        return [Link(caused_by, {"agentyard.link": "caused_by"})]
    return []


# -- the spans -------------------------------------------------------------------------------------


def enabled() -> bool:
    """Whether spans go anywhere: agentyard's exporting provider, or the application's own."""
    return _provider is not None or _has_application_provider()


@contextmanager
def span(
    name: str, attributes: Mapping[str, Any], kind: SpanKind = SpanKind.INTERNAL
) -> Iterator[Span]:
    """A span under the current context, linked to the span that caused this delivery (with
    tracing off, a span that records nothing, at next to no cost)."""
    if not enabled():
        yield trace.INVALID_SPAN
        return
    with tracer().start_as_current_span(
        name,
        kind=kind,
        attributes=_clean(attributes),
        links=_caused_by_links(),
        record_exception=True,
    ) as current:
        yield current


@contextmanager
def submit_span(workflow_id: str, workflow: str) -> Iterator[Span]:
    """The submission of a run: a child of its workflow span, linked to the caller's span."""
    if not enabled():
        yield trace.INVALID_SPAN
        return
    caller = trace.get_current_span().get_span_context()
    links = [Link(caller, {"agentyard.link": "submitted_by"})] if caller.is_valid else []
    parent = trace.set_span_in_context(NonRecordingSpan(workflow_context(workflow_id)))
    with tracer().start_as_current_span(
        f"submit {workflow}",
        context=parent,
        kind=SpanKind.PRODUCER,
        links=links,
        attributes={"workflow.id": workflow_id, "workflow.name": workflow},
    ) as current:
        yield current


@dataclass(frozen=True, slots=True)
class FinishedRun:
    """What the workflow span says of a run that just ended."""

    id: str
    name: str
    status: str
    cost_usd: float
    started_at: datetime
    finished_at: datetime
    error: str | None = None


def emit_workflow_span(run: FinishedRun) -> None:
    """Emit the span of a whole run, with its preset ids, once the run has ended."""
    if not enabled():
        return
    token = _preset.set((trace_id_of(run.id), workflow_span_id(run.id)))
    try:
        started = tracer().start_span(
            f"workflow {run.name}",
            context=otel_context.Context(),  # a root: no parent, whatever is current here
            kind=SpanKind.INTERNAL,
            start_time=_nanos(run.started_at),
            attributes={
                "workflow.id": run.id,
                "workflow.name": run.name,
                "workflow.status": run.status,
                "workflow.cost": run.cost_usd,
            },
        )
    finally:
        _preset.reset(token)
    if run.status != "succeeded":
        started.set_status(trace.Status(trace.StatusCode.ERROR, run.error or run.status))
    started.end(end_time=_nanos(run.finished_at))


def _nanos(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000_000)


def _clean(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """OpenTelemetry takes no None values."""
    return {k: v for k, v in attributes.items() if v is not None}
