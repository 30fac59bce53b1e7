"""One run's trace, put together from the spans that several worker processes export over OTLP
to a receiver, as a collector would get them."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span as ProtoSpan
from sqlmodel import select

from orchestration import Orchestrator, WorkflowStatus
from storage.db import session_scope
from storage.models import TraceRow
from storage.settings import Settings
from tests.otlp_receiver import OtlpReceiver, ReceivedSpan
from tests.system.conftest import started_workers
from workers import tracing
from workers.processes import WorkerProcess

pytestmark = [pytest.mark.integration, pytest.mark.system]


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as running:
        yield running


@pytest.fixture
def extra_env(receiver: OtlpReceiver) -> dict[str, str]:
    # The SDK's own setting: export every 200 ms instead of every 5 s.
    return {"AGENTYARD_OTEL_ENDPOINT": receiver.endpoint, "OTEL_BSP_SCHEDULE_DELAY": "200"}


@pytest.fixture
def exporting(env: dict[str, str]) -> Iterator[None]:
    """This process (which submits) exports to the receiver too."""
    provider = tracing.build_provider(Settings())
    tracing.use_provider(provider)
    yield
    provider.shutdown()
    tracing.use_provider(None)


@pytest.fixture
def three_workers(
    tmp_path: Path, env: dict[str, str], orc: Orchestrator
) -> Iterator[list[WorkerProcess]]:
    with started_workers(
        orc,
        env,
        tmp_path,
        ("--coordinator",),
        ("--agents", "researcher,writer"),
        ("--agents", "reviewer"),
    ) as processes:
        yield processes


def _complete(run_id: str) -> object:
    trace_id = run_id.replace("-", "")

    def done(spans: list[ReceivedSpan]) -> bool:
        mine = [s for s in spans if s.trace_id == trace_id]
        names = [s.name for s in mine]
        return (
            "workflow research" in names
            and "submit research" in names
            and sum(n.startswith("step ") for n in names) == 3
            and sum(n.startswith("chat ") for n in names) == 3
        )

    return done


def test_the_spans_of_one_run_from_several_worker_processes_form_one_tree(
    orc: Orchestrator,
    receiver: OtlpReceiver,
    exporting: None,
    three_workers: list[WorkerProcess],
) -> None:
    run = orc.submit("research", "the telegraph")
    result = run.wait(timeout=90)
    assert result.status is WorkflowStatus.SUCCEEDED

    spans = receiver.wait_for(_complete(run.id))  # type: ignore[arg-type]
    mine = [s for s in spans if s.trace_id == run.id.replace("-", "")]
    by_name = {s.name: s for s in mine}
    workflow = by_name["workflow research"]
    submit = by_name["submit research"]
    steps = [by_name[f"step {a}"] for a in ("researcher", "writer", "reviewer")]
    chats = [s for s in mine if s.name.startswith("chat ")]

    assert workflow.parent_span_id == ""  # the root
    assert workflow.attributes["workflow.id"] == run.id
    assert workflow.attributes["workflow.status"] == "succeeded"
    assert submit.parent_span_id == workflow.span_id
    for step, row_step in zip(steps, result.steps, strict=True):
        assert step.parent_span_id == workflow.span_id
        assert step.kind == ProtoSpan.SPAN_KIND_CONSUMER
        assert step.attributes["workflow.id"] == run.id
        assert step.attributes["agent.id"] == row_step.agent
        assert step.attributes["agent.tokens"] == row_step.tokens.total
        assert step.attributes["agent.cost"] == pytest.approx(row_step.cost_usd)
    assert sorted(c.parent_span_id for c in chats) == sorted(s.span_id for s in steps)
    for chat in chats:
        assert chat.attributes["gen_ai.request.model"] == "offline:echo"
        assert chat.attributes["gen_ai.usage.input_tokens"] > 0
        assert chat.attributes["gen_ai.usage.output_tokens"] > 0
    # Each step links to the span whose process dispatched it.
    assert steps[1].links == [(steps[0].trace_id, steps[0].span_id)]
    assert steps[2].links == [(steps[1].trace_id, steps[1].span_id)]

    # This process submitted; the agents' two workers ran the steps, and the last one ended
    # the run, so its process emitted the workflow's span.
    pids = {s.name: s.resource["process.pid"] for s in mine}
    _, first_agents, reviewer = three_workers
    assert pids["submit research"] == os.getpid()
    assert pids["step researcher"] == pids["step writer"] == first_agents.pid
    assert pids["step reviewer"] == pids["workflow research"] == reviewer.pid

    with session_scope(orc.database_url) as session:
        rows = session.exec(select(TraceRow).where(TraceRow.workflow_id == run.id)).all()
    assert {row.span_id for row in rows} == {s.span_id for s in steps}
