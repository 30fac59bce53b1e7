"""One tool call the model asked for, run through the tool ledger.

The arguments are checked against the tool's schema first: invalid ones (or a tool the agent
does not have) make an ``is_error`` result the model can mend, and nothing runs. Otherwise the
ledger (``storage.tool_ledger``) says what to do: run it (it is on record as started before it
runs, and as finished, with its result, before the model sees it), replay the result of a run
that finished, or stop, the outcome unknown (``ToolOutcomeUnknown``), for a call with side
effects that started and never finished. A tool that raises or outlives its ``timeout_s`` gives
an ``is_error`` result; one with side effects that is not idempotent and outlives its timeout
stays started on the ledger: it may yet do its work, so its outcome is unknown.

A call that is to wait for a person's approval (``tool_approvals.py``) runs only once it is
approved: until then it waits on the ledger, not run, and the step stops (``Stopped``,
``ToolApprovalNeeded``) for the coordinator to ask for the approval; rejected, or refused
when nobody decided in time, the model reads an ``is_error`` result saying so, and nothing runs.

What the model reads of a result is marked as data (it is untrusted text, from ``tool <name>``),
with delimiters derived from the call's idempotency key, the same on every replay.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import structlog

from orchestration.definitions import Agent
from orchestration.guards.provenance import tool_source
from orchestration.guards.spotlight import Spotlight
from orchestration.step.claim import Attempt
from orchestration.step.tool_approvals import ToolApprovalChecks
from orchestration.tools import ToolContext, ToolSpec
from storage.errors import ToolApprovalNeeded, ToolArgumentsInvalid, ToolOutcomeUnknown
from storage.tool_ledger import PlannedCall, ToolLedger, Verdict
from workers.providers.base import ToolResult, ToolUse

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Stopped:
    """The step stops at this call: its outcome is unknown (``ToolOutcomeUnknown``), or it
    waits for a person's approval (``ToolApprovalNeeded``)."""

    error: ToolOutcomeUnknown | ToolApprovalNeeded


class ToolCalls:
    """Runs the tool calls of one worker process's steps, each on a daemon thread of its own, so
    that a call that outlives its timeout holds neither the step nor the worker's exit."""

    def __init__(self, ledger: ToolLedger, approvals: ToolApprovalChecks) -> None:
        self._ledger = ledger
        self._approvals = approvals

    def run(self, this: Attempt, turn: int, index: int, use: ToolUse) -> ToolResult | Stopped:
        """The result the model gets for ``use``, the ``index``-th call of its answer ``turn``.
        A call on the ledger already is replayed (or stopped) whatever this agent makes of it:
        its fallback carries on the same conversation."""
        spec = _spec(this.agent, use.name)
        arguments: dict[str, object] = {}
        problem: str | None = None
        if spec is None:
            names = ", ".join(s.name for s in this.agent.tool_specs)
            problem = f"there is no tool {use.name!r}; the tools are: {names}"
        else:
            try:
                arguments = spec.validate(use.input)
            except ToolArgumentsInvalid as error:
                problem = str(error)
        if spec is not None and problem is None and self._approvals.needed(this, spec, turn):
            verdict = self._approvals.decision(this, turn, index, use)
            if verdict.waits:
                waiting = _planned(this, turn, index, use, spec)
                self._ledger.await_approval(waiting, this.number)
                log.info("tool.awaits_approval", tool=use.name, turn=turn, index=index)
                return Stopped(_approval_needed(waiting))
            problem = verdict.refusal  # None: approved
        runs_it = spec is not None and problem is None
        planned = _planned(this, turn, index, use, spec if runs_it else None)
        started = self._ledger.start(planned, this.number)
        if started.verdict is Verdict.REPLAY:
            log.info("tool.replayed", tool=use.name, turn=turn, index=index)
            return self._result(planned, started.result or "", started.is_error)
        if started.verdict is Verdict.UNKNOWN:
            return Stopped(_unknown(planned, started.runs))
        if spec is None or problem is not None:  # not run: the model reads why, and mends it
            kept = self._ledger.finish(planned, problem or "", True, 0.0)
            return self._result(planned, kept.result or "", True)
        return self._run(this, spec, planned, arguments, started.runs)

    def _run(
        self,
        this: Attempt,
        spec: ToolSpec,
        planned: PlannedCall,
        arguments: dict[str, object],
        runs: int,
    ) -> ToolResult | Stopped:
        ctx = ToolContext(
            run_id=planned.workflow_id,
            step_id=planned.step_id,
            call_id=planned.tool_use_id,
            idempotency_key=planned.idempotency_key,
            agent_id=this.agent.id,
            tool=spec.name,
        )
        clock = time.perf_counter()
        outcome = _Outcome()
        thread = threading.Thread(
            target=outcome.run, args=(spec, arguments, ctx), name=f"tool {spec.name}", daemon=True
        )
        thread.start()
        thread.join(spec.timeout_s)
        try:
            text, is_error = outcome.text(), False
        except _StillRunning:
            if not spec.safe_to_rerun:
                log.error(
                    "tool.timed_out_with_side_effects", tool=spec.name, key=ctx.idempotency_key
                )
                return Stopped(
                    _unknown(planned, runs, f"it outlived its timeout_s={spec.timeout_s}")
                )
            text, is_error = f"the tool did not finish within {spec.timeout_s:g} s", True
        except Exception as error:  # the tool's own failure: the model reads it and goes on
            text, is_error = f"{type(error).__name__}: {error}", True
        duration_ms = (time.perf_counter() - clock) * 1000
        log.info("tool.ran", tool=spec.name, is_error=is_error, runs=runs, ms=round(duration_ms, 1))
        kept = self._ledger.finish(planned, text, is_error, duration_ms)
        return self._result(planned, kept.result or "", kept.is_error)

    @staticmethod
    def _result(planned: PlannedCall, text: str, is_error: bool) -> ToolResult:
        spotlight = Spotlight.kept(planned.idempotency_key)
        return ToolResult(
            planned.tool_use_id, spotlight.data(text, tool_source(planned.tool)), is_error
        )


class _StillRunning(Exception):
    pass


class _Outcome:
    """What a tool's thread came to: its text, or what it raised."""

    def __init__(self) -> None:
        self._done = threading.Event()
        self._text = ""
        self._error: BaseException | None = None

    def run(self, spec: ToolSpec, arguments: dict[str, object], ctx: ToolContext) -> None:
        try:
            self._text = spec.run(arguments, ctx)
        except BaseException as error:  # handed to the step's thread, which decides
            self._error = error
        finally:
            self._done.set()

    def text(self) -> str:
        if not self._done.is_set():
            raise _StillRunning
        if self._error is not None:
            raise self._error
        return self._text


def _spec(agent: Agent, name: str) -> ToolSpec | None:
    return next((spec for spec in agent.tool_specs if spec.name == name), None)


def _planned(
    this: Attempt, turn: int, index: int, use: ToolUse, spec: ToolSpec | None
) -> PlannedCall:
    """The call as the ledger keys it; ``spec`` None: it is not run (what it does is moot)."""
    return PlannedCall(
        workflow_id=str(this.message.workflow_id),
        step_id=this.step_id,
        turn=turn,
        index=index,
        tool_use_id=use.id,
        tool=use.name,
        arguments=dict(use.input),
        side_effects=spec.side_effects if spec is not None else False,
        idempotent=spec.idempotent if spec is not None else True,
    )


def _approval_needed(planned: PlannedCall) -> ToolApprovalNeeded:
    return ToolApprovalNeeded(
        f"{ToolApprovalNeeded.__name__}: tool call {planned.tool} #{planned.index} of answer "
        f"{planned.turn} (step {planned.step_id}, arguments {planned.arguments}) waits for a "
        f"person's approval: `agentyard approvals` lists it; `agentyard approve "
        f"{planned.workflow_id} {planned.tool} --by NAME` lets it run"
    )


def _unknown(planned: PlannedCall, runs: int, why: str = "") -> ToolOutcomeUnknown:
    reason = why or "its worker stopped before its end was recorded"
    return ToolOutcomeUnknown(
        f"{ToolOutcomeUnknown.__name__}: tool call {planned.tool} #{planned.index} of answer "
        f"{planned.turn} (step {planned.step_id}, idempotency key {planned.idempotency_key}, "
        f"arguments {planned.arguments}) started {runs} time(s) and {reason}; it has side "
        "effects and is not idempotent, so it was not run again: find out whether it did its "
        "work, then run the workflow again"
    )
