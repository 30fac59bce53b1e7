"""The tool loop: the call stage of an agent with tools.

The model is called with the agent's tools; while it answers with ``tool_use`` blocks, each call
is run (``tool_calls.py``: checked against its schema, through the tool ledger), the results go
back to it in the next turn, and it is called again, at most ``max_tool_turns`` times past the
first (then ``ToolTurnsExhausted``). Each answer that asked for tools is a turn of its own: it
is admitted (the breaker, then its worst case held on the caps), called, recorded (its trace,
its cost, its usage on the step, the answer kept: ``Records.turn``) and settled before its tools
run. The answer that asks for none, or an error, ends the loop: it is the attempt's call, which
the runner records, settles and routes as any step's.

After a crash the next attempt starts the loop again: the answers kept are read back rather
than asked for (an answer that arrived is used, and paid for once), and each of their tool
calls is asked of the ledger again (replayed, run again when that is safe, or the step stops
with ``ToolOutcomeUnknown``). A call that waits for a person's approval stops the attempt too
(``ToolApprovalNeeded``); the attempt after the decision carries the conversation on from it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import structlog

from orchestration.definitions import Agent
from orchestration.step.admit import Admission, Refusal
from orchestration.step.call import Call
from orchestration.step.claim import Attempt, lease_s
from orchestration.step.record import Records
from orchestration.step.settle import Settlement
from orchestration.step.tool_calls import Stopped, ToolCalls
from storage.budget_store import Cap
from storage.errors import AgentyardError, ToolTurnsExhausted
from storage.models import utcnow
from storage.settings import Settings
from storage.tool_ledger import ToolLedger
from workers.providers.base import (
    Block,
    ChatMessage,
    ModelRequest,
    ToolSchema,
    ToolUse,
    Usage,
    block_from_json,
)

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Ending:
    """How the loop ended: the call that ends the attempt (``this`` is the turn it was made
    as), or the call the caps or the breaker refused, or (``lost``) the attempt lost its step
    mid-loop, its last turn on record: nothing more to record."""

    this: Attempt
    request: ModelRequest
    call: Call | None = None
    refusal: Refusal | None = None
    lost: bool = False


class ToolLoop:
    def __init__(
        self,
        admission: Admission,
        call: Callable[[Agent, ModelRequest], Call],
        records: Records,
        settlement: Settlement,
        ledger: ToolLedger,
        tools: ToolCalls,
        settings: Settings,
    ) -> None:
        self._admission = admission
        self._call = call
        self._records = records
        self._settlement = settlement
        self._ledger = ledger
        self._tools = tools
        self._settings = settings

    def run(self, this: Attempt, request: ModelRequest, caps: list[Cap]) -> Ending:
        agent = this.agent
        request = replace(request, tools=schemas_of(agent))
        kept = self._ledger.turns(this.step_id)
        messages = list(request.messages)
        turn = 0
        while True:
            this_turn = as_turn(this, turn)
            asked = replace(request, messages=tuple(messages), request_key=this_turn.call_id)
            if turn < len(kept):  # answered before this attempt: read back, not asked again
                content = tuple(block_from_json(block) for block in kept[turn])
                log.info("tool_loop.turn_replayed", turn=turn)
                if not self._records.hold(this, _lease(agent, content, self._settings)):
                    return Ending(this_turn, asked, _not_made(asked, _lost()), lost=True)
            else:
                admitted = self._admission.admit(this_turn, asked, caps)
                if isinstance(admitted, Refusal):
                    return Ending(this_turn, asked, refusal=admitted)
                call = self._call(agent, asked)
                self._admission.after_call(this_turn, admitted, call)
                response = call.response
                if call.error is not None or response is None or not response.tool_uses:
                    return Ending(this_turn, asked, call)
                if turn >= agent.max_tool_turns:
                    return Ending(this_turn, asked, replace(call, error=_exhausted(agent)))
                content = response.content
                lease = _lease(agent, content, self._settings)
                held = self._records.turn(this_turn, call, turn, content, lease)
                self._settlement.settle(this_turn, call, caps)
                if not held:
                    log.warning("tool_loop.step_lost", turn=turn)
                    return Ending(this_turn, asked, call, lost=True)
            results: list[Block] = []
            uses = [block for block in content if isinstance(block, ToolUse)]
            for index, use in enumerate(uses):
                result = self._tools.run(this, turn, index, use)
                if isinstance(result, Stopped):
                    stopped = as_turn(this, turn + 1)
                    return Ending(stopped, asked, _not_made(asked, result.error))
                results.append(result)
            messages += [ChatMessage("assistant", content), ChatMessage("user", tuple(results))]
            turn += 1


def schemas_of(agent: Agent) -> tuple[ToolSchema, ...]:
    """The agent's tools as a request offers them."""
    return tuple(
        ToolSchema(spec.name, spec.description, spec.input_schema) for spec in agent.tool_specs
    )


def as_turn(this: Attempt, turn: int) -> Attempt:
    """The attempt as its ``turn``-th call of the loop: the first keeps the attempt's call id
    (``<step>:<attempt>``), later ones add the turn, so that each holds, settles and is billed
    under an id of its own."""
    return this if turn == 0 else replace(this, call_id=f"{this.call_id}:{turn}")


def _lease(agent: Agent, content: tuple[Block, ...], settings: Settings) -> float:
    """How long the step is held once an answer asked for tools: while they run, one after
    another, and the next call is made."""
    timeouts = {spec.name: spec.timeout_s for spec in agent.tool_specs}
    tools = sum(timeouts.get(b.name, 0.0) for b in content if isinstance(b, ToolUse))
    return lease_s(agent, settings) + tools


def _lost() -> AgentyardError:
    return AgentyardError("the attempt no longer holds its step: its lease ran out")


def _exhausted(agent: Agent) -> ToolTurnsExhausted:
    return ToolTurnsExhausted(
        f"{ToolTurnsExhausted.__name__}: agent {agent.id!r} still asked for tools after "
        f"max_tool_turns={agent.max_tool_turns} answers; raise its max_tool_turns, or tell it "
        "in its system prompt when to stop and answer"
    )


def _not_made(request: ModelRequest, error: AgentyardError) -> Call:
    """The end of an attempt stopped between turns: no call, no cost."""
    return Call(request, None, error, Usage(), 0, utcnow(), 0.0)
