"""The rows an attempt writes when it is recorded, built as plain parameters for the hot path's
Core statements (``storage.statements``: no SQLModel object, no expression built per step).

Pure functions of the attempt and its call; the clock (``utcnow``) and, for the trace, the span
current when the row is built (its ids, or the run's trace id when tracing is off) are all they
read besides.
"""

from __future__ import annotations

from typing import Any

from orchestration.step.call import Call, ms
from orchestration.step.claim import Attempt
from storage import statements
from storage.models import day_of, new_id, utcnow
from workers import tracing
from workers.providers.base import ChatMessage, ToolResult, text_of


def usage_added(call: Call) -> dict[str, object]:
    """What ``call`` adds to its step's tokens and cost (the ``add_*`` parameters)."""
    usage = call.usage
    return {
        "add_input": usage.input_tokens,
        "add_output": usage.output_tokens,
        "add_cache_creation": usage.cache_creation_input_tokens,
        "add_cache_creation_1h": usage.cache_creation_1h_input_tokens,
        "add_cache_read": usage.cache_read_input_tokens,
        "add_cost": call.cost,
    }


def step_update(call: Call) -> tuple[Any, dict[str, object]]:
    """The fenced update of the step row and its parameters. Tokens and cost add up over
    attempts, failed ones included."""
    params = usage_added(call)
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


def trace_row(this: Attempt, call: Call) -> dict[str, object]:
    """The trace row of one call."""
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
        prompt=prompt_text(call.request.messages[-1]),
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


def prompt_text(message: ChatMessage) -> str:
    """What a trace shows of the turn a call answered: its text, or (a turn of tool results)
    each result, as the model read it."""
    if isinstance(message.content, str):
        return message.content
    return text_of(message) or "\n\n".join(
        f"[{'error' if b.is_error else 'result'} of {b.tool_use_id}]\n{b.content}"
        for b in message.content
        if isinstance(b, ToolResult)
    )


def ledger_row(team: str, this: Attempt, call: Call) -> dict[str, object]:
    """The call's row in the cost ledger (a call made; one not made costs nothing)."""
    now = utcnow()
    return dict(
        id=this.call_id,
        team=team,
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
