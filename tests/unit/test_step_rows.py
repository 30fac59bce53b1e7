"""The rows an attempt writes, built alone from the attempt and its call: the fenced step update,
the trace row and the cost-ledger row."""

from __future__ import annotations

from bus.envelope import request_step
from orchestration import Agent
from orchestration.context import model_request
from orchestration.step.call import Call, refused
from orchestration.step.claim import Attempt
from orchestration.step.rows import ledger_row, step_update, trace_row
from storage import statements
from storage.errors import CostLimitExceeded
from storage.models import utcnow
from workers import tracing
from workers.providers.base import ModelRequest, ModelResponse, Usage

WRITER = Agent(id="writer", model="offline:echo", max_tokens=200)
USAGE = Usage(
    input_tokens=10,
    output_tokens=20,
    cache_creation_input_tokens=3,
    cache_read_input_tokens=4,
    cache_creation_1h_input_tokens=1,
)


def _attempt(requested: str = "writer") -> tuple[Attempt, ModelRequest]:
    message = request_step(
        agent_id="writer", workflow_id="w1", step_id="s1", attempt=2, priority=5, workflow="w"
    )
    this = Attempt(message, "s1", 2, WRITER, requested, "s0", "s1:2")
    return this, model_request(WRITER, "the telegraph", None, this.call_id)


def _answered(request: ModelRequest) -> Call:
    response = ModelResponse(
        text="an answer", usage=USAGE, model=WRITER.model, stop_reason="end_turn", wire_s=0.0125
    )
    return Call(request, response, None, USAGE, 321, utcnow(), 15.0)


def test_a_call_answered_succeeds_the_step_with_its_output_and_adds_its_usage() -> None:
    _, request = _attempt()

    statement, params = step_update(_answered(request))

    assert statement is statements.STEP_SUCCEEDED
    assert params["output"] == "an answer" and params["finished_at"] is not None
    assert {key: params[key] for key in params if key.startswith("add_")} == {
        "add_input": 10,
        "add_output": 20,
        "add_cache_creation": 3,
        "add_cache_creation_1h": 1,
        "add_cache_read": 4,
        "add_cost": 321,
    }


def test_a_call_refused_fails_the_attempt_with_why_at_no_cost() -> None:
    _, request = _attempt()
    refusal = CostLimitExceeded("run:w1", 900, 0, 1_000, 200)

    statement, params = step_update(refused(request, refusal))

    assert statement is statements.STEP_ATTEMPT_FAILED
    assert params["error_kind"] == "cost_limit_exceeded" and params["error"] == str(refusal)
    assert params["error_retryable"] is False and params["retry_after_s"] is None
    assert params["add_cost"] == 0 and params["add_input"] == 0


def test_a_trace_row_names_the_agent_asked_for_only_when_its_fallback_ran() -> None:
    own, request = _attempt()
    fallback, _ = _attempt(requested="researcher")
    call = _answered(request)

    assert trace_row(own, call)["requested_agent_id"] is None
    assert trace_row(fallback, call)["requested_agent_id"] == "researcher"


def test_a_trace_row_outside_any_span_carries_its_runs_trace_id_and_the_call() -> None:
    this, request = _attempt()

    row = trace_row(this, _answered(request))

    assert row["trace_id"] == f"{tracing.trace_id_of('w1'):032x}" and row["span_id"] is None
    assert (row["step_id"], row["parent_step_id"], row["attempt"]) == ("s1", "s0", 2)
    assert row["prompt"] == request.messages[-1].content and row["output"] == "an answer"
    assert (row["outcome"], row["cost_micro"], row["wire_ms"]) == ("succeeded", 321, 12.5)


def test_the_ledger_row_of_a_call_is_its_cost_under_its_call_id() -> None:
    this, request = _attempt()

    row = ledger_row("unit", this, _answered(request))

    assert (row["id"], row["team"], row["workflow_id"], row["workflow"]) == (
        "s1:2",
        "unit",
        "w1",
        "w",
    )
    assert (row["cost_micro"], row["unknown"], row["attempt"]) == (321, False, 2)
