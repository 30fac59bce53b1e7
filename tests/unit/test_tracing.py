"""OpenTelemetry spans of workflows, steps and model calls, caught by the SDK's in-memory
exporter. Messages cross from producer to consumer only through their headers here, as between
worker processes: the in-process bus hands each delivery the headers its copy was sent with."""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from sqlmodel import select

from bus.envelope import AgentMessage, MessageType
from orchestration import Agent, Orchestrator, Workflow
from orchestration.results import WorkflowResult
from storage.db import session_scope
from storage.models import TraceRow
from tests.conftest import TeamFactory
from tests.support import InlineBus, drain, run_inline
from workers import tracing

ECHO = "offline:echo"


def _team(inline_team: TeamFactory, **models: str) -> tuple[Orchestrator, InlineBus]:
    agents = [
        Agent(id=a, model=models.get(a, ECHO), system_prompt=f"You are the {a}.", max_retries=2)
        for a in ("researcher", "writer", "reviewer")
    ]
    return inline_team(
        *agents, workflows=(Workflow.sequence("research", ["researcher", "writer", "reviewer"]),)
    )


def _named(finished: tuple[ReadableSpan, ...], prefix: str) -> list[ReadableSpan]:
    return [s for s in finished if s.name.startswith(prefix)]


def _trace_rows(orc: Orchestrator, run: WorkflowResult) -> list[TraceRow]:
    with session_scope(orc.database_url) as session:
        query = select(TraceRow).where(TraceRow.workflow_id == run.id)
        return list(session.exec(query.order_by(TraceRow.started_at)))


def test_a_workflow_is_one_trace_with_a_span_per_step_and_per_model_call(
    inline_team: TeamFactory, spans: InMemorySpanExporter
) -> None:
    orc, bus = _team(inline_team)
    result = run_inline(orc, bus, "research", "the telegraph")
    finished = spans.get_finished_spans()

    [workflow] = _named(finished, "workflow ")
    [submit] = _named(finished, "submit ")
    steps = _named(finished, "step ")
    chats = _named(finished, "chat ")
    assert workflow.name == "workflow research"
    assert workflow.parent is None
    assert workflow.context.trace_id == int(result.id.replace("-", ""), 16)
    assert workflow.attributes["workflow.id"] == result.id
    assert workflow.attributes["workflow.status"] == "succeeded"
    assert workflow.start_time < submit.start_time <= workflow.end_time
    assert {s.context.trace_id for s in finished} == {workflow.context.trace_id}
    assert submit.parent.span_id == workflow.context.span_id
    assert [s.name for s in steps] == ["step researcher", "step writer", "step reviewer"]
    for step in steps:
        assert step.parent.span_id == workflow.context.span_id
        assert step.kind is SpanKind.CONSUMER
        assert step.attributes["workflow.id"] == result.id
        assert step.attributes["agent.tokens"] > 0
        assert step.attributes["agent.cost"] > 0
    assert [c.parent.span_id for c in chats] == [s.context.span_id for s in steps]
    for chat, step in zip(chats, result.steps, strict=True):
        assert chat.name == f"chat {ECHO}"
        assert chat.kind is SpanKind.CLIENT
        assert chat.attributes["gen_ai.operation.name"] == "chat"
        assert chat.attributes["gen_ai.request.model"] == ECHO
        assert chat.attributes["gen_ai.usage.input_tokens"] == step.tokens.input
        assert chat.attributes["gen_ai.usage.output_tokens"] == step.tokens.output


def test_each_step_links_to_the_span_that_caused_its_dispatch(
    inline_team: TeamFactory, spans: InMemorySpanExporter
) -> None:
    orc, bus = _team(inline_team)
    run_inline(orc, bus, "research", "the telegraph")
    finished = spans.get_finished_spans()

    [submit] = _named(finished, "submit ")
    researcher, writer, reviewer = _named(finished, "step ")
    assert [link.context.span_id for link in researcher.links] == [submit.context.span_id]
    assert [link.context.span_id for link in writer.links] == [researcher.context.span_id]
    assert [link.context.span_id for link in reviewer.links] == [writer.context.span_id]


def test_the_trace_rows_name_the_span_of_their_step(
    inline_team: TeamFactory, spans: InMemorySpanExporter
) -> None:
    orc, bus = _team(inline_team)
    result = run_inline(orc, bus, "research", "the telegraph")
    steps = _named(spans.get_finished_spans(), "step ")

    rows = _trace_rows(orc, result)
    assert [row.span_id for row in rows] == [f"{s.context.span_id:016x}" for s in steps]
    assert {row.trace_id for row in rows} == {result.id.replace("-", "")}
    assert [row.parent_step_id for row in rows] == [None, rows[0].step_id, rows[1].step_id]


def test_the_consumer_takes_its_parent_from_the_message_headers(
    inline_team: TeamFactory, spans: InMemorySpanExporter
) -> None:
    orc, bus = _team(inline_team)
    run = orc.submit("research", "the telegraph")
    [(recipient, request)] = list(bus.queue)
    headers = bus.headers[(request.id, recipient)]
    assert headers["traceparent"] == (
        f"00-{tracing.trace_id_of(run.id):032x}-{tracing.workflow_span_id(run.id):016x}-01"
    )
    # Another parent in the headers is the one the step's span takes.
    elsewhere = trace.SpanContext(
        trace_id=0xABC, span_id=0xDEF, is_remote=True, trace_flags=trace.TraceFlags(1)
    )
    bus.headers[(request.id, recipient)] = {"traceparent": tracing._traceparent(elsewhere)}
    drain(orc, bus)

    researcher = _named(spans.get_finished_spans(), "step researcher")[0]
    assert researcher.context.trace_id == 0xABC
    assert researcher.parent.span_id == 0xDEF


def test_a_message_whose_headers_were_lost_still_joins_its_workflow_trace(
    inline_team: TeamFactory, spans: InMemorySpanExporter
) -> None:
    orc, bus = _team(inline_team)
    run = orc.submit("research", "the telegraph")
    bus.headers.clear()
    drain(orc, bus)

    researcher = _named(spans.get_finished_spans(), "step researcher")[0]
    assert researcher.context.trace_id == tracing.trace_id_of(run.id)
    assert researcher.parent.span_id == tracing.workflow_span_id(run.id)


def test_a_retry_and_a_failed_workflow_show_as_errors_on_their_spans(
    inline_team: TeamFactory, spans: InMemorySpanExporter
) -> None:
    orc, bus = _team(inline_team, writer="offline:echo?fail=rejected")
    result = run_inline(orc, bus, "research", "the telegraph")
    finished = spans.get_finished_spans()

    [workflow] = _named(finished, "workflow ")
    [writer] = _named(finished, "step writer")
    [writer_chat] = [c for c in _named(finished, "chat ") if c.parent == writer.context]
    assert result.status.value == "failed"
    assert workflow.status.status_code is StatusCode.ERROR
    assert workflow.attributes["workflow.status"] == "failed"
    assert writer.status.status_code is StatusCode.ERROR
    assert writer.attributes["agentyard.outcome"] == "rejected"
    assert writer_chat.attributes["error.type"] == "rejected"
    assert not _named(finished, "step reviewer")  # the run ended at the writer


def test_a_fallback_attempt_names_the_agent_that_was_asked_for(
    inline_team: TeamFactory, spans: InMemorySpanExporter
) -> None:
    orc, bus = inline_team(
        Agent(id="backup", model=ECHO),  # registered before the agent naming it
        Agent(id="primary", model="offline:echo?fail=rejected", fallback="backup"),
        workflows=(Workflow.sequence("w", ["primary"]),),
    )
    result = run_inline(orc, bus, "w", "the telegraph")

    primary, backup = _named(spans.get_finished_spans(), "step ")
    assert (primary.name, backup.name) == ("step primary", "step backup")
    assert backup.attributes["agent.requested"] == "primary"
    assert backup.attributes["step.attempt"] == 2
    [_, fallback_row] = _trace_rows(orc, result)
    assert (fallback_row.agent_id, fallback_row.requested_agent_id) == ("backup", "primary")


def test_a_submission_inside_the_callers_span_is_linked_to_it(
    inline_team: TeamFactory, spans: InMemorySpanExporter
) -> None:
    orc, bus = _team(inline_team)
    with tracing.tracer().start_as_current_span("handle http request") as caller:
        run = orc.submit("research", "the telegraph")
    drain(orc, bus)

    [submit] = _named(spans.get_finished_spans(), "submit ")
    assert submit.context.trace_id == tracing.trace_id_of(run.id)  # the run's own trace
    assert [link.context for link in submit.links] == [caller.get_span_context()]


def test_a_bus_message_is_handled_in_a_span_of_the_senders_trace(
    inline_team: TeamFactory, spans: InMemorySpanExporter
) -> None:
    orc, bus = inline_team(Agent(id="listener", model=ECHO))
    handled: list[str] = []
    orc.on_message("listener")(lambda message: handled.append(message.id))
    with tracing.tracer().start_as_current_span("sender") as sender:
        published = orc.bus.publish(
            AgentMessage(type=MessageType.NOTIFICATION, sender="ops", to="listener")
        )
    drain(orc, bus)

    [delivery] = _named(spans.get_finished_spans(), "message listener")
    assert handled == [published.message_id]
    assert delivery.parent.span_id == sender.get_span_context().span_id
    assert delivery.context.trace_id == sender.get_span_context().trace_id
    assert delivery.attributes["messaging.message.id"] == published.message_id


def test_the_otlp_endpoint_gets_the_traces_path_once() -> None:
    assert tracing.traces_url("http://collector:4318") == "http://collector:4318/v1/traces"
    assert tracing.traces_url("http://collector:4318/") == "http://collector:4318/v1/traces"
    assert tracing.traces_url("http://c:4318/v1/traces") == "http://c:4318/v1/traces"


def test_a_run_id_is_its_trace_id_and_any_other_name_still_gets_one() -> None:
    run_id = "4bf92f35-77b3-4da6-a3ce-929d0e0e4736"
    assert tracing.trace_id_of(run_id) == 0x4BF92F3577B34DA6A3CE929D0E0E4736
    assert tracing.trace_id_of("not-a-uuid") != 0
    assert tracing.workflow_span_id(run_id) == tracing.workflow_span_id(run_id) != 0


def test_with_tracing_off_no_span_is_made_and_the_run_still_names_its_trace(
    inline_team: TeamFactory,
) -> None:
    # Given no endpoint and no provider of the application's: tracing is off
    tracing.use_provider(None)
    assert not tracing.enabled()
    orc, bus = _team(inline_team)

    # When a run goes through, message by message
    run = orc.submit("research", "the telegraph")
    [(recipient, request)] = list(bus.queue)
    headers = bus.headers[(request.id, recipient)]
    drain(orc, bus)

    # Then its messages still carry its trace context, and its trace rows its trace id
    assert headers == {
        "traceparent": f"00-{run.id.replace('-', '')}-{tracing.workflow_span_id(run.id):016x}-01"
    }
    rows = _trace_rows(orc, run.result())
    assert [(row.trace_id, row.span_id) for row in rows] == [(run.id.replace("-", ""), None)] * 3
