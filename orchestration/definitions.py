"""What a team is made of: agents and the workflows that use them.

Both are frozen, validated values: a definition that cannot run is refused when it is made or
registered, never halfway through a workflow. However one is made (``Agent(...)``,
``Workflow.sequence(...)``, ``model_validate``, ``model_copy(update=...)``), a bad one raises
``InvalidDefinition``, whose message names the definition and, one line per field, what the
field got and what it takes.
"""

from __future__ import annotations

import difflib
import json
import re
import reprlib
from collections.abc import Callable, Mapping, Sequence
from enum import StrEnum
from functools import cached_property
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from orchestration.pricing import MAX_CAP_USD
from orchestration.tools import ToolSpec, spec_of
from orchestration.workflow.functions import FunctionRef
from orchestration.workflow.graph import (
    DAY_S,
    MAX_APPROVAL_WAIT_S,
    NODE_TYPES,
    Graph,
    ToolApprovals,
    build_graph,
)
from storage.errors import InvalidDefinition

ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
MIN_CAP_USD = 0.000001  # one micro-dollar, the unit money is counted in: a smaller cap is $0

Id = Annotated[str, Field(pattern=ID_PATTERN)]
Usd = Annotated[float, Field(ge=MIN_CAP_USD, le=MAX_CAP_USD)]

_ID_RULE = "must be 1-63 lower-case letters, digits, '-' or '_' (it names a queue)"


def _usd_rule(what: str) -> str:
    return (
        f"must be {what} in USD, from ${MIN_CAP_USD:.6f} to ${MAX_CAP_USD:,} (the largest amount "
        "accepted), or None for no cap"
    )


_shown = reprlib.Repr()
_shown.maxstring = _shown.maxother = 80


class _Definition(BaseModel):
    """A frozen pydantic model whose every way of being made refuses bad values with
    ``InvalidDefinition``: ``__init__``, ``model_validate*`` and ``model_copy(update=...)``."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    KIND: ClassVar[str]  # "agent", "workflow": how messages name it
    NAMED_BY: ClassVar[str]  # the field that names it
    RULES: ClassVar[Mapping[str, str]]  # field -> what it takes, in plain words ("must be ...")

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as error:
            raise type(self).invalid(data, error) from None

    @classmethod
    def model_validate(cls, obj: Any, *args: Any, **kwargs: Any) -> Self:
        return cls._validating(
            obj, lambda: super(_Definition, cls).model_validate(obj, *args, **kwargs)
        )

    @classmethod
    def model_validate_json(cls, json_data: Any, *args: Any, **kwargs: Any) -> Self:
        return cls._validating(
            json_data,
            lambda: super(_Definition, cls).model_validate_json(json_data, *args, **kwargs),
        )

    @classmethod
    def model_validate_strings(cls, obj: Any, *args: Any, **kwargs: Any) -> Self:
        return cls._validating(
            obj, lambda: super(_Definition, cls).model_validate_strings(obj, *args, **kwargs)
        )

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """A copy; with ``update``, a new definition validated like any other (pydantic's own
        ``model_copy`` would take the new values unchecked)."""
        if not update:
            return super().model_copy(deep=deep)
        values = {name: getattr(self, name) for name in type(self).model_fields}
        return type(self)(**{**values, **update})

    @classmethod
    def _validating(cls, given: Any, validate: Callable[[], Self]) -> Self:
        try:
            return validate()
        except ValidationError as error:
            raise cls.invalid(given, error) from None

    @classmethod
    def invalid(cls, given: Any, error: ValidationError) -> InvalidDefinition:
        """The ``InvalidDefinition`` that says, in plain words, what ``error`` found."""
        for problem in error.errors():
            # pydantic runs a custom __init__ inside model_validate, and wraps what it raises
            refused = problem.get("ctx", {}).get("error")
            if isinstance(refused, InvalidDefinition):
                return refused
        values = _as_mapping(given)
        title = cls._title(values)
        lines: dict[str, str] = {}  # one per field, the first problem found in it
        for problem in error.errors():
            field = str(problem["loc"][0]) if problem["loc"] else ""
            if field not in lines:
                lines[field] = cls._line(field, problem, values)
        return InvalidDefinition("\n".join(f"{title}: {line}" for line in lines.values()))

    @classmethod
    def _title(cls, values: Mapping[str, Any] | None) -> str:
        name = None if values is None else values.get(cls.NAMED_BY)
        return f"{cls.KIND} with no {cls.NAMED_BY}" if name is None else f"{cls.KIND} {name!r}"

    @classmethod
    def _line(cls, field: str, problem: Any, values: Mapping[str, Any] | None) -> str:
        if not field:  # a check across fields says it all; else it is no mapping of fields
            refused = problem.get("ctx", {}).get("error")
            return str(refused or f"{problem['msg']}, got {_shown.repr(problem['input'])}")
        if problem["type"] == "missing":
            return f"{field} is required: it {cls.RULES[field]}"
        if field not in cls.RULES:
            near = difflib.get_close_matches(field, cls.RULES, n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            return (
                f"{field} is not something {_a(cls.KIND)} takes{hint}; it takes "
                f"{', '.join(cls.RULES)}"
            )
        got = values[field] if values is not None and field in values else problem["input"]
        return f"{field} {cls.RULES[field]}, got {_shown.repr(got)}"


def _as_mapping(given: Any) -> Mapping[str, Any] | None:
    if isinstance(given, str | bytes | bytearray):
        try:
            given = json.loads(given)
        except ValueError:
            return None
    if isinstance(given, Mapping):
        return given
    if isinstance(given, BaseModel):
        return {name: getattr(given, name) for name in type(given).model_fields}
    return None


def _a(noun: str) -> str:
    return f"an {noun}" if noun[0] in "aeiou" else f"a {noun}"


class Agent(_Definition):
    """One kind of worker: a model, a system prompt, and the limits it runs under."""

    KIND: ClassVar[str] = "agent"
    NAMED_BY: ClassVar[str] = "id"
    RULES: ClassVar[Mapping[str, str]] = {
        "id": _ID_RULE,
        "model": "must name a model, e.g. 'claude-haiku-4-5' or 'offline:echo'",
        "system_prompt": "must be text",
        "max_tokens": "must be a whole number from 1 to 128000",
        "max_retries": "must be a whole number from 0 to 20",
        "timeout_s": "must be a number of seconds over 0 and at most 3600",
        "cost_limit_usd": _usd_rule("the agent's daily spend cap"),
        "fallback": "must be the id of another agent (registered first), or None",
        "breaker_threshold": "must be a whole number of provider failures, 1 or more",
        "breaker_window_s": "must be a finite number of seconds over 0",
        "breaker_reset_s": "must be a finite number of seconds over 0",
        "output_schema": "must be a pydantic model class the answer is parsed as, or None",
        "context_tokens": "must be a whole number of tokens from 256 to 1000000, or None (no "
        "budget: the last exchanges and the first sentences of earlier steps)",
        "prompt_cache": "must be True (the system prompt and the run's summary are read from "
        "the provider's prompt cache when they can be) or False",
        "tools": "must be a list of tools: functions defined with def at the top level of a "
        "module, with type hints and a docstring (see orchestration.tool)",
        "max_tool_turns": "must be a whole number of the model's answers from 1 to 100",
    }

    id: Id
    model: str = Field(min_length=1)
    system_prompt: str = ""
    max_tokens: int = Field(default=1024, ge=1, le=128_000)
    max_retries: int = Field(default=3, ge=0, le=20)
    timeout_s: float = Field(default=60.0, gt=0, le=3600)
    cost_limit_usd: Usd | None = None
    fallback: Id | None = None
    # The agent's circuit breaker: this many provider failures within the window open it; it
    # stays open this long, then lets one probe call through.
    breaker_threshold: int = Field(default=5, ge=1)
    breaker_window_s: float = Field(default=60.0, gt=0)
    breaker_reset_s: float = Field(default=30.0, gt=0)
    # The answer must be JSON this model takes: a check on every step of the agent (the parsed
    # value is StepResult.data); the agent is told the schema after its system prompt.
    output_schema: type[BaseModel] | None = None
    # The input of every call fits this many tokens (system prompt, earlier exchanges, the
    # request, earlier steps, what it is given; not max_tokens): the oldest exchanges are left
    # out first, then earlier steps are given by their summaries. None: no budget.
    context_tokens: int | None = Field(default=None, ge=256, le=1_000_000)
    # Mark the stable prefix of each call (system prompt, then the run's summary) for the
    # provider's prompt cache, so that a loop's iterations and a fan-out's branches read it.
    prompt_cache: bool = True
    # What the agent may call (module-level functions; ``@tool`` says what each does), and how
    # many answers asking for tools a step may get before it fails (ToolTurnsExhausted).
    tools: tuple[Any, ...] = ()
    max_tool_turns: int = Field(default=10, ge=1, le=100)

    @field_validator("tools", mode="before")
    @classmethod
    def _tools_another_worker_finds(cls, value: Any) -> Any:
        if isinstance(value, str) or not isinstance(value, Sequence):
            raise ValueError("not a list")
        for function in value:
            spec_of(function)  # InvalidDefinition, saying what to change
            FunctionRef.of(function, f"tool {getattr(function, '__name__', function)!r}")
        names = [spec_of(function).name for function in value]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise InvalidDefinition(
                f"two tools are named {twice[0]!r}: a model tells tools apart by name; rename "
                "one, or give the agent one of them"
            )
        return tuple(value)

    @cached_property
    def tool_specs(self) -> tuple[ToolSpec, ...]:
        """What the agent's tools are and do, derived once per agent (a plain function's spec
        is built anew by each ``spec_of``: its schema, its model of the arguments), however
        often the tool loop and the coordinator's decisions ask."""
        return tuple(spec_of(function) for function in self.tools)

    @model_validator(mode="after")
    def _not_its_own_fallback(self) -> Agent:
        if self.fallback == self.id:
            raise ValueError(
                f"fallback must be the id of another agent, got {self.fallback!r} (the agent "
                "itself, a cycle)"
            )
        return self

    @property
    def queue(self) -> str:
        return f"agent.{self.id}"


class WorkflowKind(StrEnum):
    SEQUENCE = "sequence"  # agent ids, each step given the previous one's output
    GRAPH = "graph"  # nodes: loops, fan-outs, parallels, routes among the steps


class Workflow(_Definition):
    """A named plan over agents: its nodes run in order. A bare agent id is ``step(id)``; a
    list of them is a sequence (``Workflow.sequence``), each step given the previous one's
    output. ``loop``, ``fan_out``, ``parallel`` and ``route`` make it a graph::

        Workflow("article", [
            "researcher",
            fan_out("summarizer", over=sources, max_parallel=8),
            loop(["editor", "critic"], max_iterations=5, until=approved, converge_at=0.92),
        ], budget_usd=2.0)
    """

    KIND: ClassVar[str] = "workflow"
    NAMED_BY: ClassVar[str] = "name"
    RULES: ClassVar[Mapping[str, str]] = {
        "name": _ID_RULE,
        "kind": f"must be one of: {', '.join(kind.value for kind in WorkflowKind)}",
        "steps": "must be a list of 1 to 200 agent ids or nodes (step(...), loop(...), "
        "fan_out(...), parallel(...), route(...))",
        "budget_usd": _usd_rule("the budget of one run"),
        "daily_budget_usd": _usd_rule("the daily spend cap of all its runs"),
        "deadline_s": "must be a finite number of seconds over 0, or None for no deadline",
        "on_injection": "must be 'flag' (record a suspected injection and go on) or "
        "'quarantine' (the step is not run, and the run fails)",
        "summarizer": "must be the id of a registered agent that writes summaries, or None",
        "approve_untrusted_side_effects": "must be True (every call of a tool with side "
        "effects from a context that holds untrusted text waits for a person's approval) or "
        "False",
        "tool_approval_timeout_s": "must be a number of seconds over 0 and at most 31622400 "
        "(366 days), or None for no limit",
        "tool_approval_on_timeout": "must be 'reject' (the model is told the call was refused), "
        "'approve' (it runs) or 'fail' (the step fails)",
    }

    name: Id
    kind: WorkflowKind | None = None  # said by its steps when not given
    steps: tuple[Any, ...] = Field(min_length=1, max_length=200)
    budget_usd: Usd | None = None  # per run
    daily_budget_usd: Usd | None = None  # all runs of it, per UTC day
    deadline_s: float | None = Field(default=None, gt=0)  # a run not finished by then times out
    on_injection: Literal["flag", "quarantine"] = "flag"
    # The agent that summarizes earlier steps once their text no longer fits a step's
    # context_tokens: a real step, made once and read by every later step that needs it.
    summarizer: Id | None = None
    # Tool calls that wait for a person's approval (besides those of tools declared
    # needs_approval=True): with True, every call of a tool with side effects from a step whose
    # context holds untrusted text. Nobody deciding within tool_approval_timeout_s applies
    # tool_approval_on_timeout.
    approve_untrusted_side_effects: bool = False
    tool_approval_timeout_s: float | None = Field(default=DAY_S, gt=0, le=MAX_APPROVAL_WAIT_S)
    tool_approval_on_timeout: Literal["reject", "approve", "fail"] = "reject"

    def __init__(
        self, name: str | None = None, steps: Sequence[Any] | None = None, /, **data: Any
    ) -> None:
        """``Workflow(name, nodes, budget_usd=...)``, or every field by name."""
        if name is not None:
            data["name"] = name
        if steps is not None:
            data["steps"] = steps
        super().__init__(**data)

    @field_validator("steps", mode="before")
    @classmethod
    def _agent_ids_or_nodes(cls, value: Any) -> Any:
        # A bare string is refused, not taken for a list of letters.
        if isinstance(value, str) or not isinstance(value, Sequence):
            raise ValueError("not a list")
        for item in value:
            if isinstance(item, str):
                if re.fullmatch(ID_PATTERN, item) is None:
                    raise ValueError(f"{item!r} is not an agent id")
            elif not isinstance(item, NODE_TYPES):
                raise ValueError(f"{item!r} is not a node")
        return tuple(value)

    @model_validator(mode="after")
    def _a_graph_that_can_run(self) -> Workflow:
        graph = self.graph  # InvalidDefinition, saying where, if it cannot
        shape = WorkflowKind.SEQUENCE if graph.is_sequence else WorkflowKind.GRAPH
        if self.kind is None:
            object.__setattr__(self, "kind", shape)
        elif self.kind != shape:
            raise InvalidDefinition(
                f"workflow {self.name!r}: kind {self.kind.value!r} does not match its steps, "
                f"which make a {shape.value}; leave kind out"
            )
        return self

    @cached_property
    def graph(self) -> Graph:
        """The workflow as a graph of nodes (``orchestration/workflow/graph.py``): what a run's
        row keeps, and what its steps are named after."""
        tool_approvals = ToolApprovals(
            self.approve_untrusted_side_effects,
            self.tool_approval_timeout_s,
            self.tool_approval_on_timeout,
        )
        return build_graph(
            list(self.steps), self.name, self.on_injection, self.summarizer, tool_approvals
        )

    @classmethod
    def sequence(
        cls,
        name: str,
        agents: list[str] | tuple[str, ...],
        budget_usd: float | None = None,
        daily_budget_usd: float | None = None,
        deadline_s: float | None = None,
    ) -> Workflow:
        if not isinstance(agents, str) and isinstance(agents, Sequence):
            nodes = [agent for agent in agents if not isinstance(agent, str)]
            if nodes:
                raise InvalidDefinition(
                    f"workflow {name!r}: Workflow.sequence takes agent ids, got {nodes[0]!r}; "
                    f"write Workflow({name!r}, [...]) for loops, fan-outs and routes"
                )
        # Validated as given: a bare string is refused, not taken for a list of letters.
        return cls.model_validate(
            {
                "name": name,
                "kind": WorkflowKind.SEQUENCE,
                "steps": agents,
                "budget_usd": budget_usd,
                "daily_budget_usd": daily_budget_usd,
                "deadline_s": deadline_s,
            }
        )
