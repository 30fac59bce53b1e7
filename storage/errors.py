"""Every exception agentyard raises, under one root: ``AgentyardError``.

It lives in ``storage`` because that is the package every other one may import; users get the
same classes from ``orchestration``. Messages say what happened, with the ids involved, and what
to do next.
"""

from __future__ import annotations

from collections.abc import Sequence


class AgentyardError(Exception):
    """Root of every error agentyard raises on purpose."""


class ConfigurationError(AgentyardError):
    """Settings, a module path or a team definition that cannot work."""


class InvalidSettings(ConfigurationError, ValueError):
    """``AGENTYARD_*`` settings that cannot work together or cannot be read; the message names
    each variable and what it takes."""


class InvalidDefinition(ConfigurationError, ValueError):
    """An ``Agent`` or ``Workflow`` built with values that cannot run; the message names each
    field and what it takes."""


class InvalidRequest(AgentyardError, ValueError):
    """A request that was refused before anything was written."""


class UnknownAgent(InvalidRequest, LookupError):
    """An agent id that is not registered with the orchestrator."""


class UnknownWorkflow(InvalidRequest, LookupError):
    """A workflow name that is not registered with the orchestrator."""


class DeadLetterNotFound(AgentyardError, LookupError):
    """A dead letter id that is not in the database."""


class MessageNotFound(InvalidRequest, LookupError):
    """A message id that is not in the audit table, or not one sent to the agent named."""


class ServiceUnavailable(AgentyardError):
    """A server agentyard needs (the broker, Redis, the database) could not be reached."""


class BrokerUnavailable(ServiceUnavailable):
    """The broker did not take a message, or cannot be reached to take one. ``run_id`` names
    the run when it was recorded all the same (a sweep dispatches it once the broker answers)."""

    def __init__(self, message: str, *, run_id: str | None = None) -> None:
        super().__init__(message)
        self.run_id = run_id


class DatabaseUnavailable(ServiceUnavailable):
    """The database cannot be reached."""


class TaskFailed(AgentyardError):
    """A Celery task of agentyard's failed; the message names ids only (it travels to Flower
    and ``celery events``), and the worker's log has the original error."""


class RunNotFound(AgentyardError, LookupError):
    """A workflow run id that is not in the database."""


class WaitTimeout(AgentyardError, TimeoutError):
    """``WorkflowRun.wait`` gave up before the run finished (the run goes on)."""


class LoopLimitReached(AgentyardError):
    """A loop with ``on_limit="fail"`` stopped by ``max_iterations`` or the run's budget before
    ``until`` or convergence ended it. A run it ends is ``failed``; its error starts with this
    class's name, then names the loop, its iterations and why."""


class ValidationFailed(AgentyardError):
    """A check kept refusing a step's answer: asked again as often as allowed, and of the
    agent's fallback. A run it ends is ``failed``; its error starts with this class's name, then
    names the step, the check and its reason."""


class InjectionSuspected(AgentyardError):
    """A step of a workflow with ``on_injection="quarantine"`` was given text in which an
    injection attempt was suspected: it was not run, and none of that text reached its agent. A
    run it ends is ``failed``; its error starts with this class's name, then says what was found
    and where."""


class ContextTooLarge(AgentyardError):
    """A step's input could not fit its agent's ``context_tokens``, even with its oldest
    exchanges left out and every earlier step given by its summary: no call was made. A run it
    ends is ``failed``; its error starts with this class's name, then says how many tokens were
    needed and what to change."""


class ApprovalRefused(InvalidRequest):
    """A decision about an approval was refused, and nothing was written: the gate is not
    waiting (not reached yet, decided already, past its due time, or its run ended), what it is
    to pass on is not what the hash given says (it changed since it was seen), or it waits in
    several frames and none was named. The message says which, with the ids, and what to do."""


class ApprovalRejected(AgentyardError):
    """A person rejected what an approval gate was to pass on (or nobody decided in time, and
    its ``on_timeout`` is ``reject``). The run ends ``rejected``; its error starts with this
    class's name, then names the gate, who decided and their note."""


class ApprovalTimedOut(AgentyardError):
    """Nobody decided an approval gate whose ``on_timeout`` is ``fail`` by its due time: the
    gate fails as a node does (its frame, and with it the run unless a fan-out collects). Its
    error starts with this class's name, then names the gate and how long it waited. A tool
    call's approval that times out so fails its step."""

    kind = "approval_timed_out"


class ToolArgumentsInvalid(AgentyardError, ValueError):
    """A model called a tool with arguments its ``input_schema`` does not take: the tool was not
    run. ``problems`` has one line per argument ("amount: Input should be a valid number, got
    'ten'"); the message says them all, and what to do, for the model to read in an ``is_error``
    tool_result and call again."""

    def __init__(self, tool: str, problems: Sequence[str]) -> None:
        self.tool = tool
        self.problems = tuple(problems)
        lines = "\n".join(f"- {problem}" for problem in self.problems)
        super().__init__(
            f"tool {tool!r} was not run: its arguments do not match its input_schema:\n{lines}\n"
            "Call it again with the arguments corrected."
        )


class ToolOutcomeUnknown(AgentyardError):
    """A tool call with side effects was started and never recorded as finished (its worker died
    while it ran): it may have done its work, and its tool is not idempotent, so it is not run
    again. The step fails, naming the call, for a person to find out what happened; neither a
    retry nor a fallback takes it over (either would carry the same conversation on)."""

    kind = "tool_outcome_unknown"


class ToolApprovalNeeded(AgentyardError):
    """A tool call waits for a person's approval before it runs (its tool says
    ``needs_approval=True``, or it has side effects, is called from a context that holds
    untrusted text, and the workflow says ``approve_untrusted_side_effects=True``). The attempt
    ends there, at no cost: the call waits on the tool ledger, the run waits for the approval
    (``waiting_approval``), and once it is decided another attempt of the step carries the
    conversation on from the call. Not a failure: no retry is spent on it."""

    kind = "tool_approval_needed"


class ToolTurnsExhausted(AgentyardError):
    """The model was still asking for tools after its agent's ``max_tool_turns`` answers: the
    step failed rather than loop on (for good: another attempt would carry on the same
    conversation)."""

    kind = "tool_turns_exhausted"


class ProviderError(AgentyardError):
    """A model call that did not return a usable answer.

    ``retryable`` tells the retry policy whether another attempt may succeed; ``retry_after_s``
    carries the provider's own hint when it gave one. ``provider_failure`` says whether the
    provider is in trouble (the agent's circuit breaker counts those, and nothing else).
    """

    retryable: bool = False
    provider_failure: bool = False
    kind: str = "provider_error"

    def __init__(
        self, message: str, *, status: int | None = None, retry_after_s: float | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after_s = retry_after_s


class RateLimited(ProviderError):
    retryable = True
    provider_failure = True
    kind = "rate_limited"


class Overloaded(ProviderError):
    retryable = True
    provider_failure = True
    kind = "overloaded"


class ProviderTimeout(ProviderError):
    """The provider did not deliver its answer within the agent's deadline, counted from the
    moment the request was sent (time the worker spent on its own never counts)."""

    retryable = True
    provider_failure = True
    kind = "timeout"


class ProviderUnavailable(ProviderError):
    """Connection refused, reset, or a 5xx other than overloaded."""

    retryable = True
    provider_failure = True
    kind = "unavailable"


class WorkerBusy(ProviderError):
    """The call could not be sent in time for a reason of the worker's own (no free connection in
    its pool): another attempt may go through, and the provider is not to blame."""

    retryable = True
    kind = "worker_busy"


class ProviderRejected(ProviderError):
    """The provider refused the request itself (4xx): sending it again will not help."""

    retryable = False
    kind = "rejected"


class BreakerOpen(AgentyardError):
    """A model call was not made: the agent's circuit breaker is open (its provider is failing)."""

    kind = "breaker_open"
    retryable = True

    def __init__(self, agent_id: str, retry_in_s: float) -> None:
        self.retry_after_s = retry_in_s
        super().__init__(
            f"agent {agent_id!r}: its circuit breaker is open after repeated provider failures; "
            f"the step waits {retry_in_s:.1f}s or goes to the agent's fallback"
        )


class CostLimitExceeded(AgentyardError):
    """A model call was not made: its worst case could have broken a spend cap."""

    kind = "cost_limit_exceeded"

    def __init__(
        self, scope: str, spent_micro: int, reserved_micro: int, cap_micro: int, needed_micro: int
    ) -> None:
        self.scope = scope
        self.spent_micro = spent_micro
        self.reserved_micro = reserved_micro
        self.cap_micro = cap_micro
        self.needed_micro = needed_micro
        # Room held by calls under way may come back when they settle (for less than their worst
        # case): then the call is worth trying again. Spent money does not come back.
        self.retryable = spent_micro + needed_micro <= cap_micro
        advice = (
            "it will be tried again when they settle"
            if self.retryable
            else "raise the cap or wait for its period to end"
        )
        super().__init__(
            f"the {scope} cap of ${cap_micro / 1e6:.6f} would be broken: ${spent_micro / 1e6:.6f} "
            f"spent and ${reserved_micro / 1e6:.6f} held by calls under way, and this call needs "
            f"up to ${needed_micro / 1e6:.6f}; {advice}"
        )
