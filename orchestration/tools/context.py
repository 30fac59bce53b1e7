"""What a tool is told about the call it is running for: ``ToolContext``."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolContext:
    """The call a tool is running for, given to a tool that declares a parameter annotated
    ``ToolContext`` (by convention ``ctx: ToolContext``); that parameter is left out of the
    tool's ``input_schema``, so the model never sees or fills it.

    Every field is the same each time the same tool call is run, whichever worker runs it and
    however often its step is redelivered: pass ``idempotency_key`` on to the outside system
    (a payment API's ``Idempotency-Key`` header, a unique column) so that it can tell a repeat
    from a new request. ``call_id`` is the model's ``tool_use`` id.
    """

    run_id: str
    step_id: str
    call_id: str
    idempotency_key: str
    agent_id: str
    tool: str  # the tool's name, as the model called it
