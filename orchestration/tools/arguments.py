"""The arguments a tool takes, read from its signature by pydantic: a model with one field per
parameter (less the ``ToolContext`` one), the JSON schema the model is shown, and the check of
what a model sent against it.

Validation is pydantic's default (lax) mode, with no unknown arguments: ``"3"`` is taken for an
``int`` and ``"true"`` for a ``bool`` (models write numbers as strings now and then), but ``"ten"``,
``3.5`` for an ``int``, ``3`` for a ``str``, a value outside a ``Literal`` or an enum, and an
argument the tool does not take are all refused.
"""

from __future__ import annotations

import inspect
import reprlib
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PydanticUndefinedAnnotation,
    PydanticUserError,
    TypeAdapter,
    ValidationError,
    create_model,
)
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails

from orchestration.tools.context import ToolContext
from storage.errors import InvalidDefinition, ToolArgumentsInvalid

CONTEXT_PARAMETER = "ctx"  # the name a ToolContext parameter is given by convention

_shown = reprlib.Repr()
_shown.maxstring = _shown.maxother = 80

_SCHEMA_TYPES = (
    "str, int, float, bool, list[...], dict[str, ...], Literal[...], an Enum, a pydantic model, "
    "a dataclass, or X | None of one of them"
)


@dataclass(frozen=True, slots=True)
class Arguments:
    """What ``read`` found in a tool's signature."""

    model: type[BaseModel]  # one field per argument, each aliased to its parameter's name
    schema: dict[str, Any]
    context_parameter: str | None  # the parameter given the ToolContext, if there is one

    def validate(self, tool: str, arguments: object) -> dict[str, Any]:
        """The validated keyword arguments (defaults filled in) for ``arguments`` as the model
        sent them; ``ToolArgumentsInvalid`` naming each argument that is wrong."""
        if not isinstance(arguments, Mapping):
            got = _shown.repr(arguments)
            raise ToolArgumentsInvalid(
                tool,
                [f"arguments: Input should be an object of named arguments, got {got}"],
            )
        try:
            valid = self.model.model_validate(dict(arguments))
        except ValidationError as error:
            raise ToolArgumentsInvalid(
                tool, [self._problem(problem) for problem in error.errors()]
            ) from None
        return {
            str(info.alias): getattr(valid, field)
            for field, info in self.model.model_fields.items()
        }

    def _problem(self, problem: ErrorDetails) -> str:
        where = ".".join(str(part) for part in problem["loc"]) or "arguments"
        if problem["type"] == "missing":
            return f"{where}: {problem['msg']}"
        if problem["type"] == "extra_forbidden" and len(problem["loc"]) == 1:
            takes = ", ".join(str(info.alias) for info in self.model.model_fields.values())
            return f"{where}: not an argument of this tool; it takes {takes or 'none'}"
        return f"{where}: {problem['msg']}, got {_shown.repr(problem['input'])}"


def read(fn: Callable[..., Any], tool: str) -> Arguments:
    """The arguments of ``fn``, the function of tool ``tool``; ``InvalidDefinition`` saying what
    to change if a model could not call it by name with JSON."""
    try:
        hints = typing.get_type_hints(fn, include_extras=True)
    except Exception as exc:  # NameError, or a string annotation that is no Python
        raise InvalidDefinition(
            f"tool {tool!r}: its type hints cannot be read ({type(exc).__name__}: {exc}); every "
            f"name they use must be defined or imported before the tool, at the top level of "
            f"{fn.__module__}"
        ) from None
    fields: dict[str, Any] = {}
    context: str | None = None
    for index, parameter in enumerate(inspect.signature(fn).parameters.values()):
        name = parameter.name
        _by_name(tool, parameter)
        if name not in hints:
            raise InvalidDefinition(
                f"tool {tool!r}: parameter {name!r} has no type hint; every parameter needs one "
                f"(its JSON schema is made from it), e.g. {name}: str"
            )
        hint = hints[name]
        if _unannotated(hint) is ToolContext:
            if context is not None:
                raise InvalidDefinition(
                    f"tool {tool!r}: parameters {context!r} and {name!r} are both annotated "
                    f"ToolContext; one parameter, {CONTEXT_PARAMETER}: ToolContext, takes it"
                )
            context = name
            continue
        if name == CONTEXT_PARAMETER:
            raise InvalidDefinition(
                f"tool {tool!r}: parameter {name!r} is annotated {_named(hint)}, not ToolContext; "
                f"annotate it {name}: ToolContext (from orchestration.tools) to be given the "
                "call's context, or rename it"
            )
        _has_schema(tool, name, hint)
        fields[f"p{index}"] = _field(name, hint, parameter.default)
    model = create_model(tool, __config__=ConfigDict(extra="forbid"), **fields)
    return Arguments(model, model.model_json_schema(), context)


def _by_name(tool: str, parameter: inspect.Parameter) -> None:
    """Refuse a parameter the model could not give by name."""
    kind, name = parameter.kind, parameter.name
    if kind is inspect.Parameter.VAR_POSITIONAL or kind is inspect.Parameter.VAR_KEYWORD:
        stars = "*" if kind is inspect.Parameter.VAR_POSITIONAL else "**"
        raise InvalidDefinition(
            f"tool {tool!r}: {stars}{name} takes arguments the model cannot be told about; list "
            "each argument as a parameter with its type hint"
        )
    if kind is inspect.Parameter.POSITIONAL_ONLY:
        raise InvalidDefinition(
            f"tool {tool!r}: parameter {name!r} is positional-only, and the model gives "
            "arguments by name; remove the '/'"
        )


def _has_schema(tool: str, name: str, hint: Any) -> None:
    try:
        TypeAdapter(hint).json_schema()
    except (PydanticUserError, PydanticUndefinedAnnotation) as exc:
        reason = str(exc).splitlines()[0]
        raise InvalidDefinition(
            f"tool {tool!r}: parameter {name!r} is annotated {_named(hint)}, of which pydantic "
            f"cannot make a JSON schema ({reason}); use {_SCHEMA_TYPES}"
        ) from None


def _field(name: str, hint: Any, default: Any) -> tuple[Any, FieldInfo]:
    """The field of parameter ``name``, aliased to that name (whatever alias its own ``Field``
    says: the function is called with it), so that any parameter name works, even one that is
    an attribute of ``BaseModel`` (``json``, ``copy``) or starts with ``_``."""
    if isinstance(default, FieldInfo):  # def f(limit: int = Field(5, ge=1)), as validate_call
        hint, default = Annotated[hint, default], inspect.Parameter.empty
    if default is inspect.Parameter.empty:
        return hint, Field(alias=name, validation_alias=name, serialization_alias=name)
    return hint, Field(default, alias=name, validation_alias=name, serialization_alias=name)


def _unannotated(hint: Any) -> Any:
    return typing.get_args(hint)[0] if typing.get_origin(hint) is Annotated else hint


def _named(hint: Any) -> str:
    return hint.__name__ if isinstance(hint, type) else repr(hint)
