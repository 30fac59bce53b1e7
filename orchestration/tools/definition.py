"""A tool an agent may call: a function defined with ``def`` at the top level of a module, with a
type hint on every parameter and a docstring, and what ``@tool(...)`` declares about it::

    @tool(side_effects=True, idempotent=True, timeout_s=20)
    def refund(
        order_id: Annotated[str, Field(description="The order's id, e.g. 'ord_123'")],
        amount: float,
        ctx: ToolContext,
    ) -> dict[str, str]:
        \"\"\"Refund part or all of an order; returns the refund's id.\"\"\"
        return payments.refund(order_id, amount, idempotency_key=ctx.idempotency_key)

Its ``ToolSpec`` (``spec_of(refund)``) has the name the model calls it by (the function's), the
description it reads (the docstring), and the JSON schema of its arguments, made by pydantic from
the type hints (see ``arguments.py``). Workers in other processes find a tool again by importing
the module that defines it, so ``@tool`` returns the function itself, unchanged: it is still
importable by its dotted path and callable as before.

``side_effects`` and ``idempotent`` together say whether a call whose outcome is unknown (its
worker died while it ran) may be run again:

- ``side_effects=False``: it only reads; it is run again freely, whatever ``idempotent`` says.
- ``side_effects=True, idempotent=True``: running it twice with the same
  ``ToolContext.idempotency_key`` does what running it once does (the outside system dedups on
  the key); it is run again with that key.
- ``side_effects=True, idempotent=False`` (what ``@tool(side_effects=True)`` means): it is never
  run twice; a call whose outcome is unknown is not run again (invariant 9).

``ToolSpec.safe_to_rerun`` is that answer.
"""

from __future__ import annotations

import copy
import inspect
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar, overload

from orchestration.tools.arguments import Arguments, read
from orchestration.tools.context import ToolContext
from orchestration.tools.result_text import as_text
from storage.errors import InvalidDefinition

TOOL_NAME_PATTERN = r"^[a-zA-Z0-9_-]{1,64}$"  # the Messages API's rule for a tool's name
MAX_TIMEOUT_S = 3600.0
DEFAULT_TIMEOUT_S = 30.0

_SPEC_ATTRIBUTE = "__agentyard_tool__"  # where @tool leaves the spec on the function

F = TypeVar("F", bound=Callable[..., Any])

_RULES: Mapping[str, str] = {
    "name": "must be 1-64 letters, digits, '_' or '-' (the Messages API's rule for a tool's "
    "name): rename the function",
    "side_effects": "must be True (it changes something outside: a payment, an email, a row) "
    "or False",
    "idempotent": "must be True (run twice with the same idempotency_key, it does what it does "
    "once) or False",
    "timeout_s": f"must be a number of seconds over 0 and at most {MAX_TIMEOUT_S:.0f}",
    "needs_approval": "must be True (a person approves each call before it runs) or False",
}


@dataclass(frozen=True, kw_only=True)
class ToolSpec:
    """A tool as agentyard knows it; made by ``spec_of`` (or ``@tool``), never by hand."""

    name: str
    description: str
    fn: Callable[..., Any]
    side_effects: bool = False
    idempotent: bool = False
    timeout_s: float = DEFAULT_TIMEOUT_S
    needs_approval: bool = False
    arguments: Arguments = field(repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or re.fullmatch(TOOL_NAME_PATTERN, self.name) is None:
            raise InvalidDefinition(f"tool {self.name!r}: its name {_RULES['name']}")
        for flag in ("side_effects", "idempotent", "needs_approval"):
            if not isinstance(getattr(self, flag), bool):
                self._refuse(flag)
        timeout = self.timeout_s
        if (
            isinstance(timeout, bool)
            or not isinstance(timeout, int | float)
            or not math.isfinite(timeout)
            or not 0 < timeout <= MAX_TIMEOUT_S
        ):
            self._refuse("timeout_s")
        object.__setattr__(self, "timeout_s", float(timeout))

    def _refuse(self, flag: str) -> None:
        raise InvalidDefinition(
            f"tool {self.name!r}: {flag} {_RULES[flag]}, got {getattr(self, flag)!r}"
        )

    @property
    def input_schema(self) -> dict[str, Any]:
        """The JSON schema of the arguments (a copy: change it freely)."""
        return copy.deepcopy(self.arguments.schema)

    @property
    def takes_context(self) -> bool:
        """Whether the function has a parameter annotated ``ToolContext``."""
        return self.arguments.context_parameter is not None

    @property
    def path(self) -> str:
        """Where the function lives, ``package.module:name``: how another process finds it."""
        return f"{self.fn.__module__}:{self.fn.__qualname__}"

    @property
    def safe_to_rerun(self) -> bool:
        """Whether a call whose outcome is unknown may be run again (with the same
        ``idempotency_key``): a tool without side effects, or an idempotent one."""
        return not self.side_effects or self.idempotent

    def validate(self, arguments: object) -> dict[str, Any]:
        """The keyword arguments to call the function with (validated by pydantic, defaults
        filled in, without the context), from ``arguments`` as the model sent them (the
        ``input`` of its ``tool_use`` block); ``ToolArgumentsInvalid`` if they do not fit the
        schema, with one line per wrong argument the model can act on."""
        return self.arguments.validate(self.name, arguments)

    def run(self, arguments: object, ctx: ToolContext) -> str:
        """Validate ``arguments``, call the function with them (and ``ctx``, if it takes it),
        and return what it returned as the text of a tool_result (see ``as_text``).

        It catches nothing: ``ToolArgumentsInvalid`` and whatever the function raises reach the
        caller, which decides (an ``is_error`` tool_result, as a rule). It does not enforce
        ``timeout_s`` either: the caller runs it where it can stop waiting for it.
        """
        kwargs = self.validate(arguments)
        if self.arguments.context_parameter is not None:
            kwargs[self.arguments.context_parameter] = ctx
        return as_text(self.fn(**kwargs))


@overload
def tool(fn: F, /) -> F: ...


@overload
def tool(
    *,
    side_effects: bool = False,
    idempotent: bool = False,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    needs_approval: bool = False,
) -> Callable[[F], F]: ...


def tool(
    fn: Any = None,
    /,
    *,
    side_effects: bool = False,
    idempotent: bool = False,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    needs_approval: bool = False,
) -> Any:
    """Declare a function a tool, bare (``@tool``: the defaults) or with what it does
    (``@tool(side_effects=True, idempotent=False, timeout_s=30, needs_approval=False)``).

    The function is checked at once (``InvalidDefinition`` saying what to change) and returned
    as it is, with its ``ToolSpec`` attached for ``spec_of``.
    """

    def declare(fn: F) -> F:
        spec = _make(
            fn,
            side_effects=side_effects,
            idempotent=idempotent,
            timeout_s=timeout_s,
            needs_approval=needs_approval,
        )
        setattr(fn, _SPEC_ATTRIBUTE, spec)
        return fn

    return declare if fn is None else declare(fn)


def spec_of(fn: Callable[..., Any] | ToolSpec) -> ToolSpec:
    """The ``ToolSpec`` of ``fn``: what ``@tool`` declared, or the defaults for a plain function
    (no side effects, 30 s); ``InvalidDefinition`` if it cannot be a tool."""
    if isinstance(fn, ToolSpec):
        return fn
    declared = getattr(fn, _SPEC_ATTRIBUTE, None)
    if isinstance(declared, ToolSpec):
        if declared.fn is fn:
            return declared
        # functools.wraps copied the spec of the function it wraps onto a new one: the wrapper
        # is the tool, with what the wrapped one declared
        return _make(
            fn,
            side_effects=declared.side_effects,
            idempotent=declared.idempotent,
            timeout_s=declared.timeout_s,
            needs_approval=declared.needs_approval,
        )
    return _make(fn)


def describe(tools: Iterable[ToolSpec | Callable[..., Any]]) -> list[dict[str, Any]]:
    """The ``tools`` parameter of the Messages API, one ``{"name", "description",
    "input_schema"}`` per tool (new dicts, which the caller may add ``cache_control`` to);
    ``InvalidDefinition`` if two tools have one name."""
    described: list[dict[str, Any]] = []
    seen: dict[str, ToolSpec] = {}
    for spec in map(spec_of, tools):
        if spec.name in seen:
            raise InvalidDefinition(
                f"two tools are named {spec.name!r} ({seen[spec.name].path} and {spec.path}); "
                "an agent's tools need names of their own: rename one function"
            )
        seen[spec.name] = spec
        described.append(
            {"name": spec.name, "description": spec.description, "input_schema": spec.input_schema}
        )
    return described


def _make(
    fn: object,
    *,
    side_effects: bool = False,
    idempotent: bool = False,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    needs_approval: bool = False,
) -> ToolSpec:
    function = _top_level_function(fn)
    name = function.__name__
    doc = inspect.cleandoc(function.__doc__ or "")
    if not doc:
        raise InvalidDefinition(
            f"tool {name!r} has no docstring, and the model reads it to know what the tool does "
            "and when to call it: write one saying that, and what it returns"
        )
    return ToolSpec(
        name=name,
        description=doc,
        fn=function,
        side_effects=side_effects,
        idempotent=idempotent,
        timeout_s=timeout_s,
        needs_approval=needs_approval,
        arguments=read(function, name),
    )


def _top_level_function(fn: object) -> Callable[..., Any]:
    """``fn`` if it is a function another process can import by its module and name (and run
    in a worker thread); ``InvalidDefinition`` saying what to change if not."""
    where = "at the top level of its module"
    if inspect.ismethod(fn):
        raise InvalidDefinition(
            f"tool {fn.__name__!r} is a method of {type(fn.__self__).__name__}: another worker "
            f"cannot find it by its name. Define a function with def {where} "
            f"({fn.__module__}) that calls it"
        )
    if not inspect.isfunction(fn):
        raise InvalidDefinition(
            f"a tool must be a function defined with def {where}, got {type(fn).__name__} "
            f"{fn!r}; wrap it in one"
        )
    name, qualname, module = fn.__name__, fn.__qualname__, fn.__module__
    if name == "<lambda>":
        raise InvalidDefinition(
            f"a tool cannot be a lambda (in {module}): the model needs its name and docstring, "
            f"and another worker must find it by name. Define it with def {where}"
        )
    if "<locals>" in qualname:
        outer = qualname.split(".<locals>", 1)[0]
        raise InvalidDefinition(
            f"tool {name!r} is defined inside {outer}() ({qualname}): another worker cannot "
            f"import it. Define it with def {where} ({module})"
        )
    if qualname != name:
        owner = qualname.rsplit(".", 1)[0]
        raise InvalidDefinition(
            f"tool {name!r} is a method of {owner}: another worker cannot find it by its name. "
            f"Define a function with def {where} ({module}) that calls it"
        )
    if inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn):
        raise InvalidDefinition(
            f"tool {name!r} is defined with async def; tools run in worker threads, with no "
            "event loop: define it with def"
        )
    return fn
