import dataclasses
import functools
import importlib
import json
import re
import socket
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import TypeAdapter

from orchestration.tools import ToolContext, ToolSpec, describe, spec_of, tool
from storage.errors import AgentyardError, InvalidDefinition, ToolArgumentsInvalid
from tests import tool_examples
from tests.tool_examples import (
    CALLS,
    Address,
    Priority,
    every_kind,
    fails,
    give_back,
    lookup,
    record,
    refund,
    search_docs,
    send_email,
    whoami,
)


def _ctx(tool: str = "refund") -> ToolContext:
    return ToolContext(
        run_id="run-1",
        step_id="step-2",
        call_id="toolu_3",
        idempotency_key="key-4",
        agent_id="support",
        tool=tool,
    )


# -- what a tool is ------------------------------------------------------------------------------


def test_a_decorated_tool_is_the_function_itself_still_callable_and_importable_by_its_path() -> (
    None
):
    assert search_docs("refunds", limit=2) == ["refunds 0", "refunds 1"]
    spec = spec_of(search_docs)
    assert spec.fn is search_docs
    assert spec.path == "tests.tool_examples:search_docs"
    module, _, name = spec.path.partition(":")
    assert getattr(importlib.import_module(module), name) is search_docs
    assert spec_of(search_docs) is spec  # what @tool attached, not made again


def test_a_tool_is_named_after_its_function_and_described_by_its_cleaned_docstring() -> None:
    spec = spec_of(search_docs)

    assert spec.name == "search_docs"
    assert spec.description == (
        "Search the product documentation.\n\nReturns the titles of the pages that match, best "
        "first."
    )


def test_the_flags_are_what_the_decorator_declared_and_the_defaults_otherwise() -> None:
    declared, bare, plain = spec_of(refund), spec_of(search_docs), spec_of(every_kind)

    assert (declared.side_effects, declared.idempotent, declared.timeout_s) == (True, True, 20.0)
    assert not declared.needs_approval
    assert spec_of(whoami).needs_approval
    for spec in (bare, plain):
        assert (spec.side_effects, spec.idempotent, spec.timeout_s, spec.needs_approval) == (
            False,
            False,
            30.0,
            False,
        )


@pytest.mark.parametrize(
    ("side_effects", "idempotent", "safe"),
    [(False, False, True), (False, True, True), (True, True, True), (True, False, False)],
)
def test_only_a_tool_with_side_effects_that_is_not_idempotent_is_unsafe_to_run_again(
    side_effects: bool, idempotent: bool, safe: bool
) -> None:
    spec = dataclasses.replace(
        spec_of(search_docs), side_effects=side_effects, idempotent=idempotent
    )

    assert spec.safe_to_rerun is safe


def test_a_wrapper_made_with_functools_wraps_is_the_tool_with_what_the_wrapped_one_declared() -> (
    None
):
    spec = spec_of(send_email)

    assert spec.fn is send_email  # the wrapper, as the module names it
    assert (spec.side_effects, spec.timeout_s) == (True, 5.0)
    assert spec.run({"to": "a@example.com", "body": "hi"}, _ctx()) == "sent to a@example.com"


def test_specs_compare_by_their_function_and_flags_and_can_be_kept_in_a_set() -> None:
    assert spec_of(every_kind) == spec_of(every_kind)
    assert len({spec_of(every_kind), spec_of(every_kind), spec_of(search_docs)}) == 2


# -- the schema ----------------------------------------------------------------------------------


def test_the_schema_has_each_kind_of_parameter_as_pydantic_describes_it() -> None:
    schema = spec_of(every_kind).input_schema
    props = schema["properties"]

    assert schema["type"] == "object"
    assert schema["additionalProperties"] is False
    assert list(props) == [
        "text",
        "count",
        "ratio",
        "flag",
        "tags",
        "mode",
        "priority",
        "address",
        "note",
        "retries",
        "limit",
    ]
    assert schema["required"] == [
        "text",
        "count",
        "ratio",
        "flag",
        "tags",
        "mode",
        "priority",
        "address",
    ]
    assert props["text"]["type"] == "string"
    assert props["count"]["type"] == "integer"
    assert props["ratio"]["type"] == "number"
    assert props["flag"]["type"] == "boolean"
    assert props["tags"] == {"items": {"type": "string"}, "title": "Tags", "type": "array"}
    assert props["mode"]["enum"] == ["fast", "thorough"]
    assert props["priority"] == {"$ref": "#/$defs/Priority"}
    assert schema["$defs"]["Priority"] == TypeAdapter(Priority).json_schema()
    assert props["address"] == {"$ref": "#/$defs/Address"}
    assert schema["$defs"]["Address"] == Address.model_json_schema()
    assert props["note"]["anyOf"] == [{"type": "string"}, {"type": "null"}]
    assert props["note"]["default"] is None
    assert props["retries"]["default"] == 3
    assert props["limit"] == {
        "default": 10,
        "description": "At most this many",
        "maximum": 50,
        "minimum": 1,
        "title": "Limit",
        "type": "integer",
    }


def test_descriptions_written_with_annotated_field_come_through_to_the_schema() -> None:
    props = spec_of(refund).input_schema["properties"]

    assert props["order_id"]["description"] == "The order's id, e.g. 'ord_123'"
    assert "description" not in props["amount"]


def test_the_context_is_left_out_of_the_schema_whatever_its_parameter_is_named() -> None:
    for fn, parameter in ((refund, "ctx"), (whoami, "context")):
        spec = spec_of(fn)
        assert spec.takes_context
        assert parameter not in spec.input_schema["properties"]
        assert parameter not in spec.input_schema.get("required", [])
    assert spec_of(whoami).input_schema["properties"] == {}
    assert not spec_of(search_docs).takes_context


def test_parameters_named_like_pydantic_attributes_or_private_ones_keep_their_names() -> None:
    spec = spec_of(lookup)

    assert list(spec.input_schema["properties"]) == ["json", "copy", "_private"]
    assert spec.validate({"json": "a", "copy": True, "_private": 2}) == {
        "json": "a",
        "copy": True,
        "_private": 2,
    }
    assert spec.run({"json": "a"}, _ctx()) == "a False 0"


def test_the_schema_handed_out_is_a_copy_the_caller_may_change() -> None:
    spec = spec_of(search_docs)
    spec.input_schema["properties"].clear()

    assert "query" in spec.input_schema["properties"]


# -- refusals ------------------------------------------------------------------------------------


def no_docstring(query: str) -> str:
    return query


def blank_docstring(query: str) -> str:
    """ """
    return query


def untyped(query, limit: int) -> str:
    """Search."""
    return str(query)


def star_args(*queries: str) -> str:
    """Search."""
    return ""


def star_kwargs(**options: str) -> str:
    """Search."""
    return ""


def positional_only(query: str, /) -> str:
    """Search."""
    return query


def ctx_not_a_context(query: str, ctx: dict[str, str]) -> str:
    """Search."""
    return query


def two_contexts(first: ToolContext, second: ToolContext) -> str:
    """Search."""
    return ""


def takes_a_socket(connection: socket.socket) -> str:
    """Send."""
    return ""


def takes_a_callback(callback: Callable[[str], str]) -> str:
    """Call back."""
    return ""


def unresolved(query: "NotDefinedAnywhere") -> str:  # type: ignore[name-defined]  # noqa: F821
    """Search."""
    return ""


async def asynchronous(query: str) -> str:
    """Search."""
    return query


def résumé(text: str) -> str:
    """Summarize."""
    return text


def a_name_far_too_long_for_the_messages_api_to_take_as_the_name_of_a_tool(x: str) -> str:
    """Too long a name."""
    return x


def plain_search(query: str) -> str:
    """Search."""
    return query


class Holder:
    def method(self, query: str) -> str:
        """Search."""
        return query


def _nested() -> Callable[..., Any]:
    def inner(query: str) -> str:
        """Search."""
        return query

    return inner


@pytest.mark.parametrize(
    ("fn", "message"),
    [
        (
            no_docstring,
            "tool 'no_docstring' has no docstring, and the model reads it to know what the tool "
            "does and when to call it: write one saying that, and what it returns",
        ),
        (blank_docstring, "tool 'blank_docstring' has no docstring"),
        (
            lambda query: query,
            "a tool cannot be a lambda (in tests.unit.test_tool_definitions): the model needs its "
            "name and docstring, and another worker must find it by name. Define it with def at "
            "the top level of its module",
        ),
        (
            _nested(),
            "tool 'inner' is defined inside _nested() (_nested.<locals>.inner): another worker "
            "cannot import it. Define it with def at the top level of its module "
            "(tests.unit.test_tool_definitions)",
        ),
        (
            Holder().method,
            "tool 'method' is a method of Holder: another worker cannot find it by its name. "
            "Define a function with def at the top level of its module "
            "(tests.unit.test_tool_definitions) that calls it",
        ),
        (Holder.method, "tool 'method' is a method of Holder: another worker cannot find it"),
        (
            functools.partial(search_docs, limit=1),
            "a tool must be a function defined with def at the top level of its module, got "
            "partial",
        ),
        (print, "a tool must be a function defined with def at the top level of its module"),
        (
            untyped,
            "tool 'untyped': parameter 'query' has no type hint; every parameter needs one (its "
            "JSON schema is made from it), e.g. query: str",
        ),
        (
            star_args,
            "tool 'star_args': *queries takes arguments the model cannot be told about; list "
            "each argument as a parameter with its type hint",
        ),
        (star_kwargs, "tool 'star_kwargs': **options takes arguments the model cannot be told"),
        (
            positional_only,
            "tool 'positional_only': parameter 'query' is positional-only, and the model gives "
            "arguments by name; remove the '/'",
        ),
        (
            ctx_not_a_context,
            "tool 'ctx_not_a_context': parameter 'ctx' is annotated dict[str, str], not "
            "ToolContext; annotate it ctx: ToolContext (from orchestration.tools) to be given "
            "the call's context, or rename it",
        ),
        (
            two_contexts,
            "tool 'two_contexts': parameters 'first' and 'second' are both annotated ToolContext",
        ),
        (
            takes_a_socket,
            "tool 'takes_a_socket': parameter 'connection' is annotated socket, of which pydantic "
            "cannot make a JSON schema (Unable to generate pydantic-core schema for <class "
            "'socket.socket'>.",
        ),
        (
            takes_a_callback,
            "tool 'takes_a_callback': parameter 'callback' is annotated "
            "collections.abc.Callable[[str], str], of which pydantic cannot make a JSON schema",
        ),
        (
            unresolved,
            "tool 'unresolved': its type hints cannot be read (NameError: name "
            "'NotDefinedAnywhere' is not defined); every name they use must be defined or "
            "imported before the tool, at the top level of tests.unit.test_tool_definitions",
        ),
        (
            asynchronous,
            "tool 'asynchronous' is defined with async def; tools run in worker threads, with no "
            "event loop: define it with def",
        ),
        (
            résumé,
            "tool 'résumé': its name must be 1-64 letters, digits, '_' or '-' (the Messages "
            "API's rule for a tool's name): rename the function",
        ),
        (
            a_name_far_too_long_for_the_messages_api_to_take_as_the_name_of_a_tool,
            "tool 'a_name_far_too_long_for_the_messages_api_to_take_as_the_name_of_a_tool': its "
            "name must be 1-64",
        ),
    ],
    ids=lambda value: getattr(value, "__name__", None),
)
def test_a_function_that_cannot_be_a_tool_is_refused_saying_what_to_change(
    fn: Any, message: str
) -> None:
    with pytest.raises(InvalidDefinition) as refused:
        spec_of(fn)
    assert str(refused.value).startswith(message)

    with pytest.raises(InvalidDefinition) as refused_by_the_decorator:
        tool(fn)
    assert str(refused_by_the_decorator.value) == str(refused.value)


_TIMEOUT_RULE = "timeout_s must be a number of seconds over 0 and at most 3600"


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ({"timeout_s": 0}, f"{_TIMEOUT_RULE}, got 0"),
        ({"timeout_s": 3601}, f"{_TIMEOUT_RULE}, got 3601"),
        ({"timeout_s": float("nan")}, f"{_TIMEOUT_RULE}, got nan"),
        ({"timeout_s": True}, f"{_TIMEOUT_RULE}, got True"),
        ({"timeout_s": "30"}, f"{_TIMEOUT_RULE}, got '30'"),
        (
            {"side_effects": "yes"},
            "side_effects must be True (it changes something outside: a payment, an email, a "
            "row) or False, got 'yes'",
        ),
        ({"idempotent": 1}, "idempotent must be True (run twice with the same idempotency_key"),
        ({"needs_approval": None}, "needs_approval must be True (a person approves each call"),
    ],
)
def test_flags_that_cannot_work_are_refused_naming_the_tool_and_the_flag(
    flags: dict[str, Any], message: str
) -> None:
    message = "tool 'plain_search': " + message
    with pytest.raises(InvalidDefinition, match="^" + re.escape(message)):
        tool(**flags)(plain_search)
    with pytest.raises(InvalidDefinition, match="^" + re.escape(message)):
        dataclasses.replace(spec_of(plain_search), **flags)  # however a spec is made
    assert not hasattr(plain_search, "__agentyard_tool__")


def test_a_timeout_of_a_whole_hour_is_the_longest_taken() -> None:
    assert dataclasses.replace(spec_of(plain_search), timeout_s=3600).timeout_s == 3600.0


# -- validating the model's arguments ------------------------------------------------------------


def test_valid_arguments_come_back_as_typed_keyword_arguments_with_the_defaults_filled_in() -> None:
    kwargs = spec_of(every_kind).validate(
        {
            "text": "hi",
            "count": 2,
            "ratio": 0.5,
            "flag": True,
            "tags": ["a"],
            "mode": "fast",
            "priority": "high",
            "address": {"street": "1 Main St", "city": "Springfield"},
        }
    )

    assert kwargs == {
        "text": "hi",
        "count": 2,
        "ratio": 0.5,
        "flag": True,
        "tags": ["a"],
        "mode": "fast",
        "priority": Priority.HIGH,
        "address": Address(street="1 Main St", city="Springfield"),
        "note": None,
        "retries": 3,
        "limit": 10,
    }


def test_validation_is_pydantics_lax_mode_numbers_written_as_strings_are_taken() -> None:
    assert spec_of(refund).validate({"order_id": "ord_1", "amount": "12.50"})["amount"] == 12.5
    assert spec_of(search_docs).validate({"query": "x", "limit": "3"})["limit"] == 3


@pytest.mark.parametrize(
    ("fn", "arguments", "problem"),
    [
        (refund, {"order_id": "ord_1", "amount": "ten"}, "amount: Input should be a valid number"),
        (search_docs, {"query": 3}, "query: Input should be a valid string, got 3"),
        (search_docs, {"query": "x", "limit": 2.5}, "limit: Input should be a valid integer"),
        (search_docs, {}, "query: Field required"),
        (
            search_docs,
            {"query": "x", "max": 3},
            "max: not an argument of this tool; it takes query, limit",
        ),
        (whoami, {"x": 1}, "x: not an argument of this tool; it takes none"),
        (
            every_kind,
            {"mode": "slow"},
            "mode: Input should be 'fast' or 'thorough', got 'slow'",
        ),
        (every_kind, {"priority": "urgent"}, "priority: Input should be 'low' or 'high'"),
        (every_kind, {"address": {"street": "1 Main St"}}, "address.city: Field required"),
        (every_kind, {"limit": 0}, "limit: Input should be greater than or equal to 1, got 0"),
        (
            search_docs,
            ["x"],
            "arguments: Input should be an object of named arguments, got ['x']",
        ),
    ],
)
def test_arguments_that_do_not_fit_the_schema_are_refused_naming_each_field_for_the_model(
    fn: Callable[..., Any], arguments: Any, problem: str
) -> None:
    with pytest.raises(ToolArgumentsInvalid) as refused:
        spec_of(fn).validate(arguments)

    assert any(line.startswith(problem) for line in refused.value.problems), refused.value.problems
    assert f"- {problem}" in str(refused.value)
    assert refused.value.tool == spec_of(fn).name


def test_the_refusal_lists_every_problem_and_tells_the_model_what_to_do() -> None:
    with pytest.raises(ToolArgumentsInvalid) as refused:
        spec_of(refund).validate({"amount": "ten", "ctx": {}})

    assert isinstance(refused.value, AgentyardError)
    assert str(refused.value) == (
        "tool 'refund' was not run: its arguments do not match its input_schema:\n"
        "- order_id: Field required\n"
        "- amount: Input should be a valid number, unable to parse string as a number, got "
        "'ten'\n"
        "- ctx: not an argument of this tool; it takes order_id, amount\n"
        "Call it again with the arguments corrected."
    )
    assert refused.value.__cause__ is None


# -- running -------------------------------------------------------------------------------------


def test_run_passes_the_context_to_a_tool_that_takes_it() -> None:
    assert json.loads(spec_of(whoami).run({}, _ctx("whoami"))) == {
        "run": "run-1",
        "step": "step-2",
        "call": "toolu_3",
    }
    assert json.loads(spec_of(refund).run({"order_id": "ord_1", "amount": 5}, _ctx())) == {
        "refund_id": "re_key-4",
        "amount": 5.0,
        "at": "2025-01-02T00:00:00Z",
    }


@pytest.mark.parametrize(
    ("kind", "text"),
    [
        ("dict", '{"b":1,"a":"é"}'),
        ("dataclass", '{"refund_id":"re_1","amount":2.5,"at":"2025-01-02T03:04:05Z"}'),
        ("model", '{"street":"1 Main St","city":"Springfield"}'),
        ("none", ""),
        ("str", "plain text, not JSON"),
        ("list", '["high",1.5,null]'),
    ],
)
def test_run_turns_what_the_tool_returned_into_the_text_of_a_tool_result(
    kind: str, text: str
) -> None:
    assert spec_of(give_back).run({"kind": kind}, _ctx("give_back")) == text


def test_run_lets_the_tools_own_exception_through_for_the_caller_to_decide() -> None:
    with pytest.raises(LookupError, match="no such order"):
        spec_of(fails).run({"reason": "no such order"}, _ctx("fails"))


def test_run_does_not_call_the_tool_when_its_arguments_are_refused() -> None:
    CALLS.clear()

    with pytest.raises(ToolArgumentsInvalid):
        spec_of(record).run({"note": 42}, _ctx("record"))
    assert CALLS == []

    assert spec_of(record).run({"note": "hello"}, _ctx("record")) == ""
    assert CALLS == ["hello"]


# -- describing the tools to the model -----------------------------------------------------------


def test_describe_gives_the_tools_parameter_of_the_messages_api() -> None:
    described = describe([search_docs, spec_of(refund)])

    assert [sorted(tool) for tool in described] == [["description", "input_schema", "name"]] * 2
    assert described[0]["name"] == "search_docs"
    assert described[0]["description"] == spec_of(search_docs).description
    assert described[0]["input_schema"] == spec_of(search_docs).input_schema
    assert described[1]["name"] == "refund"
    assert "ctx" not in described[1]["input_schema"]["properties"]
    json.dumps(described)  # what the SDK sends


def test_describe_refuses_two_tools_of_one_name() -> None:
    with pytest.raises(InvalidDefinition) as refused:
        describe([search_docs, tool_examples.search_docs])

    assert str(refused.value) == (
        "two tools are named 'search_docs' (tests.tool_examples:search_docs and "
        "tests.tool_examples:search_docs); an agent's tools need names of their own: rename one "
        "function"
    )


def test_a_spec_is_frozen() -> None:
    spec: ToolSpec = spec_of(search_docs)
    with pytest.raises(AttributeError):
        spec.timeout_s = 1  # type: ignore[misc]
    with pytest.raises(AttributeError):
        _ctx().run_id = "other"  # type: ignore[misc]
