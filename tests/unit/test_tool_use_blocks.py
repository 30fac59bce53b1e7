"""Tool use in the provider layer: content blocks on the real ``anthropic`` SDK against the stub
server (scripted tool calls, results sent back, the API's refusals), the offline model calling
tools deterministically, and the budget counting every block."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import replace
from enum import StrEnum

import pytest
from pydantic import BaseModel, Field

from orchestration.budget import TOOL_USE_SYSTEM_TOKENS, input_tokens_bound
from orchestration.context_budget import content_hash
from storage.errors import ConfigurationError, ProviderRejected
from workers.providers.anthropic_provider import AnthropicProvider, _prompt
from workers.providers.base import (
    ChatMessage,
    ModelRequest,
    TextBlock,
    Thinking,
    ToolResult,
    ToolSchema,
    ToolUse,
    text_of,
)
from workers.providers.offline import OfflineModel, OfflineProvider
from workers.providers.schema_instance import instance_of
from workers.stub_anthropic import StubAnthropicServer

API_KEY = "sk-ant-test-TOPSECRET-0123456789"
TASK = "How long is the Nile? Use measure_river."


class Unit(StrEnum):
    KM = "km"
    MI = "mi"


class Reach(BaseModel):
    start: str
    end: str | None = None


class MeasureRiver(BaseModel):
    river: str = Field(min_length=3, max_length=40)
    unit: Unit
    precision: int = Field(ge=2, le=5)
    include_delta: bool
    tributaries: list[str]
    reach: Reach
    note: str = "unused"


LOOKUP = ToolSchema(
    "lookup",
    "Looks a word up in the atlas.",
    {"type": "object", "properties": {"word": {"type": "string"}}, "required": ["word"]},
)
MEASURE = ToolSchema(
    "measure_river", "Measures a river's length.", MeasureRiver.model_json_schema()
)


def make_request(
    *messages: ChatMessage,
    model: str = "claude-stub",
    tools: tuple[ToolSchema, ...] = (LOOKUP, MEASURE),
    preamble: str = "",
) -> ModelRequest:
    return ModelRequest(
        model=model,
        system="You are a geographer.",
        messages=messages or (ChatMessage("user", TASK),),
        max_tokens=200,
        timeout_s=5.0,
        request_key="step-1:1",
        preamble=preamble,
        tools=tools,
    )


def answered(request: ModelRequest, call: ToolUse, result: str, **kw: bool) -> ModelRequest:
    """``request`` with the model's tool call and the tool's result appended."""
    return replace(
        request,
        messages=(
            *request.messages,
            ChatMessage("assistant", (call,)),
            ChatMessage("user", (ToolResult(call.id, result, **kw),)),
        ),
    )


@pytest.fixture
def stub() -> Iterator[StubAnthropicServer]:
    with StubAnthropicServer() as server:
        yield server


@pytest.fixture
def provider(stub: StubAnthropicServer) -> Iterator[AnthropicProvider]:
    with AnthropicProvider(API_KEY, stub.base_url) as p:
        yield p


# -- the real SDK against the stub -----------------------------------------------------------------


def test_a_scripted_tool_call_comes_back_as_tool_use_blocks(
    provider: AnthropicProvider, stub: StubAnthropicServer
) -> None:
    # Given a model that says a word, then calls a tool
    calls = [{"name": "measure_river", "input": {"river": "Nile"}}]
    stub.script([{"text": "Let me measure.", "tool_use": calls}])

    # When it is asked
    response = provider.complete(make_request())

    # Then the answer holds the text and the call, in order, and stops for the tool
    assert response.stop_reason == "tool_use"
    assert response.text == "Let me measure."
    (call,) = response.tool_uses
    assert re.fullmatch(r"toolu_stub_[0-9a-f]{12}", call.id)
    assert (call.name, call.input) == ("measure_river", {"river": "Nile"})
    assert response.content == (TextBlock("Let me measure."), call)
    assert stub.stats()["tool_use_replies"] == 1


def test_the_tool_results_go_back_and_the_model_answers_with_text(
    provider: AnthropicProvider, stub: StubAnthropicServer
) -> None:
    # Given a model that asked for two tools at once
    calls = [{"name": "lookup", "input": {"word": word}} for word in ("Nile", "Delta")]
    stub.script([{"tool_use": calls}])
    request = make_request()
    asked = provider.complete(request)
    first, second = asked.tool_uses
    assert first.id != second.id and asked.text == "" and asked.content == asked.tool_uses

    # When both results are sent back, one of them an error
    follow_up = replace(
        request,
        messages=(
            *request.messages,
            ChatMessage("assistant", asked.content),
            ChatMessage(
                "user",
                (
                    ToolResult(first.id, "6650 km"),
                    ToolResult(second.id, "no such entry", is_error=True),
                ),
            ),
        ),
    )
    response = provider.complete(follow_up)

    # Then the model answers in text, having read the results
    assert response.stop_reason == "end_turn"
    assert response.tool_uses == ()
    assert "6650 km" in response.text and "no such entry" in response.text
    assert stub.stats()["by_request"] == {"step-1:1": [200, 200]}


def test_a_tool_call_left_without_its_result_is_rejected_as_the_api_rejects_it(
    provider: AnthropicProvider, stub: StubAnthropicServer
) -> None:
    # Given a conversation whose tool call is followed by text, not by its result
    call = ToolUse("toolu_01abc", "lookup", {"word": "Nile"})
    request = make_request(
        ChatMessage("user", TASK),
        ChatMessage("assistant", (TextBlock("Looking."), call)),
        ChatMessage("user", "Well?"),
    )

    # When it is sent, Then the API's 400 is a rejection nobody retries
    with pytest.raises(ProviderRejected) as caught:
        provider.complete(request)
    assert caught.value.status == 400 and not caught.value.retryable
    assert (
        "messages.1: `tool_use` ids were found without `tool_result` blocks immediately after: "
        "toolu_01abc" in str(caught.value)
    )
    with pytest.raises(ProviderRejected):  # counting checks it too
        provider.count_tokens(request)
    assert stub.stats()["by_status"] == {"400": 1}


def test_a_result_for_a_call_the_model_never_made_is_rejected(
    provider: AnthropicProvider,
) -> None:
    call = ToolUse("toolu_01abc", "lookup", {"word": "Nile"})
    request = make_request(
        ChatMessage("user", TASK),
        ChatMessage("assistant", (call,)),
        ChatMessage("user", (ToolResult(call.id, "6650 km"), ToolResult("toolu_99", "?"))),
    )

    with pytest.raises(ProviderRejected) as caught:
        provider.complete(request)
    assert (
        "messages.2.content.1: unexpected `tool_use_id` found in `tool_result` blocks: toolu_99"
        in str(caught.value)
    )


def test_the_tools_are_sent_and_counted_as_the_call_bills_them(
    provider: AnthropicProvider, stub: StubAnthropicServer
) -> None:
    # Given the same conversation with tools offered and without
    call = ToolUse("toolu_01abc", "measure_river", {"river": "Nile", "unit": "km"})
    with_tools = answered(make_request(), call, "6650 km")
    without = replace(with_tools, tools=())

    # When each is counted and made
    counted, counted_without = provider.count_tokens(with_tools), provider.count_tokens(without)
    response = provider.complete(with_tools)

    # Then the tools' definitions are part of the input, as billed
    definitions = "".join(
        f"{t.name}{t.description}{json.dumps(t.input_schema, sort_keys=True)}"
        for t in (LOOKUP, MEASURE)
    )
    assert counted - counted_without == pytest.approx(len(definitions) / 4, abs=1)
    assert response.usage.input_tokens == counted
    # And the budget's bound holds the call's whole input
    assert input_tokens_bound(with_tools) >= counted


def test_the_preamble_opens_the_first_user_turn_after_the_results_it_carries(
    provider: AnthropicProvider,
) -> None:
    # Given a conversation that opens with the model's tool call, and a preamble
    call = ToolUse("toolu_01abc", "lookup", {"word": "Nile"})
    request = make_request(
        ChatMessage("assistant", (call,)),
        ChatMessage("user", (ToolResult(call.id, "6650 km"), TextBlock(TASK))),
        preamble="Earlier: the atlas was opened.",
    )

    # When the prompt is laid out
    _, messages = _prompt(request)

    # Then the result still opens its turn (as the API requires), and the call is accepted
    assert [b["type"] for b in messages[1]["content"]] == ["tool_result", "text", "text"]
    assert provider.complete(request).stop_reason == "end_turn"


def test_blocks_go_on_the_wire_as_the_api_takes_them() -> None:
    call = ToolUse("toolu_01abc", "lookup", {"word": "Nile"})
    request = make_request(
        ChatMessage("user", TASK),
        ChatMessage("assistant", (Thinking("Atlas first.", "sig-1"), call)),
        ChatMessage("user", (ToolResult(call.id, "not found", is_error=True),)),
    )

    _, messages = _prompt(request)

    assert messages[1:] == [
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "Atlas first.", "signature": "sig-1"},
                {
                    "type": "tool_use",
                    "id": "toolu_01abc",
                    "name": "lookup",
                    "input": {"word": "Nile"},
                },
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_01abc",
                    "content": "not found",
                    "is_error": True,
                },
            ],
        },
    ]
    assert messages[0] == {"role": "user", "content": TASK}


# -- the offline model -----------------------------------------------------------------------------


def test_the_offline_model_calls_the_tool_the_task_names_with_arguments_its_schema_accepts() -> (
    None
):
    # Given a task that names one of two tools
    request = make_request(model="offline:echo")

    # When the offline model is asked
    response = OfflineProvider().complete(request)

    # Then it calls that tool, once, with the smallest arguments its schema accepts
    assert response.stop_reason == "tool_use"
    (call,) = response.tool_uses
    assert call.name == "measure_river" and call.id.startswith("toolu_offline_")
    parsed = MeasureRiver.model_validate(call.input)
    assert parsed.unit is Unit.KM and parsed.precision == 2 and parsed.include_delta is False
    assert len(parsed.tributaries) == 1 and "note" not in call.input
    assert parsed.river in TASK
    assert response.usage.input_tokens > 0 and response.usage.output_tokens > 0
    assert OfflineProvider().complete(request) == response


def test_the_offline_model_calls_the_first_tool_when_the_task_names_none() -> None:
    response = OfflineProvider().complete(
        make_request(ChatMessage("user", "How long is the Nile?"), model="offline:echo")
    )

    (call,) = response.tool_uses
    assert call == ToolUse(call.id, "lookup", {"word": "How long is the Nile?"})


def test_after_the_tool_results_the_offline_model_answers_with_them() -> None:
    # Given the offline model's tool call, answered
    provider = OfflineProvider()
    request = make_request(model="offline:echo")
    (call,) = provider.complete(request).tool_uses

    # When it is asked again with the result
    response = provider.complete(answered(request, call, "6650 km\n(approx.)"))

    # Then it answers in text that quotes the result
    assert response.stop_reason == "end_turn" and response.tool_uses == ()
    assert "Tool results: measure_river: 6650 km (approx.)" in response.text
    assert "Topic: How long is the Nile? Use measure_river." in response.text
    assert response.content == (TextBlock(response.text),)


def test_an_error_result_is_quoted_as_an_error() -> None:
    provider = OfflineProvider()
    request = make_request(model="offline:echo")
    (call,) = provider.complete(request).tool_uses

    response = provider.complete(answered(request, call, "no such river", is_error=True))

    assert "Tool results: measure_river (error): no such river" in response.text


def test_tool_turns_sets_how_many_rounds_of_calls_come_before_the_answer() -> None:
    provider = OfflineProvider()
    request = make_request(model="offline:echo?tool_turns=2")
    reasons = []
    for n in range(3):
        response = provider.complete(request)
        reasons.append(response.stop_reason)
        if response.tool_uses:
            request = answered(request, response.tool_uses[0], f"result {n}")

    assert reasons == ["tool_use", "tool_use", "end_turn"]
    assert "Tool results: measure_river: result 0; measure_river: result 1" in response.text
    none = provider.complete(make_request(model="offline:echo?tool_turns=0"))
    assert none.stop_reason == "end_turn" and "Tool results: none" in none.text


def test_a_request_without_tools_is_answered_offline_exactly_as_before() -> None:
    request = make_request(ChatMessage("user", "the telegraph"), model="offline:echo", tools=())
    request = replace(request, system="You are a researcher. Be brief.", max_tokens=1024)

    response = OfflineProvider().complete(request)

    assert response.text == (
        "You are a researcher.\nTopic: the telegraph\n- Point 1 of 3 on the telegraph.\n"
        "- Point 2 of 3 on the telegraph.\n- Point 3 of 3 on the telegraph.\n"
        "(offline answer acc7ab44)"
    )
    assert (response.usage.input_tokens, response.usage.output_tokens) == (19, 42)
    assert response.stop_reason == "end_turn" and response.tool_uses == ()


@pytest.mark.parametrize(
    ("option", "message"),
    [("tool_turns=-1", "tool_turns must be 0 or more"), ("tool_turns=many", "bad number")],
)
def test_a_bad_tool_turns_option_says_what_is_wrong(option: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        OfflineModel.parse(f"offline:echo?{option}")


def test_schema_instances_are_the_smallest_the_schema_accepts() -> None:
    assert instance_of({"type": "object", "properties": {"a": {"type": "string"}}}, "x") == {}
    assert instance_of({"type": "number", "exclusiveMinimum": 1}, "x") == 1.5
    assert instance_of({"type": "integer", "maximum": 0}, "x") == 0
    assert instance_of({"type": "string", "minLength": 4}, "ab") == "ab.."
    assert instance_of({"type": ["null", "boolean"]}, "x") is False
    assert instance_of({"type": "array", "items": {"const": 7}, "minItems": 2}, "x") == [7, 7]


# -- counting --------------------------------------------------------------------------------------


def test_the_budgets_input_bound_counts_every_block_and_the_tools() -> None:
    plain = make_request(ChatMessage("user", "q"), tools=())
    call = ToolUse("toolu_01abc", "lookup", {"word": "é" * 50})
    blocks = answered(plain, call, "r" * 300)
    thinking = replace(
        blocks,
        messages=(
            *blocks.messages[:1],
            ChatMessage("assistant", (Thinking("t" * 200, "s"), call)),
            *blocks.messages[2:],
        ),
    )

    grown = input_tokens_bound(blocks) - input_tokens_bound(plain)
    assert grown > 100 + 300  # the input's JSON (two bytes an é) and the result
    assert input_tokens_bound(thinking) - input_tokens_bound(blocks) > 200
    offered = input_tokens_bound(replace(plain, tools=(MEASURE,))) - input_tokens_bound(plain)
    assert offered > TOOL_USE_SYSTEM_TOKENS + len(json.dumps(MEASURE.input_schema))


def test_the_count_cache_tells_requests_apart_by_their_blocks_and_tools() -> None:
    call = ToolUse("toolu_01abc", "lookup", {"word": "Nile"})
    one = answered(make_request(), call, "6650 km")
    other = answered(make_request(), call, "6850 km")

    assert content_hash(one) != content_hash(other)
    assert content_hash(one) != content_hash(replace(one, tools=(LOOKUP,)))
    assert content_hash(one) == content_hash(answered(make_request(), call, "6650 km"))


def test_text_of_reads_the_text_of_a_turn_whatever_its_content() -> None:
    call = ToolUse("toolu_01abc", "lookup", {"word": "Nile"})
    assert text_of(ChatMessage("user", "plain")) == "plain"
    assert text_of(ChatMessage("assistant", (TextBlock("a"), call, TextBlock("b")))) == "ab"
    assert text_of((ToolResult(call.id, "6650 km"),)) == ""
