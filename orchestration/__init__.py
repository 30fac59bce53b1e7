"""agentyard: teams of LLM agents as durable workflows on Celery, Redis and PostgreSQL.

from orchestration import Agent, Orchestrator, Workflow, fan_out, loop, parallel, route, step
from orchestration import RunView, Verdict, check, verify   # validation checkpoints
from orchestration import tool, ToolContext                   # tools an agent may call
from orchestration import approval                            # a gate a person approves
"""

from orchestration.approvals import ApprovalDecision, PendingApproval
from orchestration.definitions import Agent, Workflow
from orchestration.orchestrator import Orchestrator
from orchestration.pricing import MAX_CAP_USD
from orchestration.results import (
    LoopOutcome,
    StepResult,
    Tokens,
    ToolCallResult,
    WorkflowResult,
    WorkflowRun,
)
from orchestration.run_trace import CallTrace, RunTrace, StepTrace
from orchestration.tools import ToolContext, ToolSpec, tool
from orchestration.trace_queries import FoundRun, RunQuery
from orchestration.workflow.builders import (
    approval,
    check,
    fan_out,
    loop,
    parallel,
    route,
    step,
    verify,
)
from orchestration.workflow.checks import CheckResult, RunView, Verdict
from storage.errors import (
    AgentyardError,
    ApprovalRefused,
    ApprovalRejected,
    ApprovalTimedOut,
    BrokerUnavailable,
    ConfigurationError,
    DatabaseUnavailable,
    InjectionSuspected,
    InvalidDefinition,
    InvalidRequest,
    InvalidSettings,
    LoopLimitReached,
    ProviderError,
    RunNotFound,
    ServiceUnavailable,
    ToolArgumentsInvalid,
    ToolOutcomeUnknown,
    ToolTurnsExhausted,
    UnknownAgent,
    UnknownWorkflow,
    ValidationFailed,
    WaitTimeout,
)
from storage.models import StepStatus, WorkflowStatus
from storage.settings import Settings

__all__ = [
    "MAX_CAP_USD",
    "Agent",
    "AgentyardError",
    "ApprovalDecision",
    "ApprovalRefused",
    "ApprovalRejected",
    "ApprovalTimedOut",
    "BrokerUnavailable",
    "CallTrace",
    "CheckResult",
    "ConfigurationError",
    "DatabaseUnavailable",
    "FoundRun",
    "InjectionSuspected",
    "InvalidDefinition",
    "InvalidRequest",
    "InvalidSettings",
    "LoopLimitReached",
    "LoopOutcome",
    "Orchestrator",
    "PendingApproval",
    "ProviderError",
    "RunNotFound",
    "RunQuery",
    "RunTrace",
    "RunView",
    "ServiceUnavailable",
    "Settings",
    "StepResult",
    "StepStatus",
    "StepTrace",
    "Tokens",
    "ToolArgumentsInvalid",
    "ToolCallResult",
    "ToolContext",
    "ToolOutcomeUnknown",
    "ToolSpec",
    "ToolTurnsExhausted",
    "UnknownAgent",
    "UnknownWorkflow",
    "ValidationFailed",
    "Verdict",
    "WaitTimeout",
    "Workflow",
    "WorkflowResult",
    "WorkflowRun",
    "WorkflowStatus",
    "approval",
    "check",
    "fan_out",
    "loop",
    "parallel",
    "route",
    "step",
    "tool",
    "verify",
]
