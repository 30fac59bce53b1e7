"""The stub Anthropic server, spoken to over plain HTTP (no SDK): bodies, scripts, stats. Each
test given ``stub`` runs on both servers: the threaded one and the asyncio one."""

from __future__ import annotations

import http.client
import json
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest

from workers.stub_anthropic import StubAnthropicServer, StubServer
from workers.stub_anthropic_async import AsyncStubServer

HEADERS = {"x-api-key": "test-key", "anthropic-version": "2023-06-01"}
REQUEST = {
    "model": "claude-stub",
    "max_tokens": 256,
    "system": "You are terse.",
    "messages": [{"role": "user", "content": "What is the capital of France?"}],
}


@pytest.fixture(params=["threads", "asyncio"])
def stub(request: pytest.FixtureRequest) -> Iterator[StubServer]:
    server = StubAnthropicServer() if request.param == "threads" else AsyncStubServer()
    with server:
        yield server


def call(
    stub: StubAnthropicServer,
    method: str,
    path: str,
    body: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], dict[str, Any]]:
    """One request on its own connection, closed before returning: (status, headers, JSON)."""
    conn = http.client.HTTPConnection("127.0.0.1", stub.port, timeout=10)
    try:
        payload = json.dumps(body).encode() if body is not None else None
        send_headers = {"Content-Type": "application/json", **(headers or {})}
        conn.request(method, path, body=payload, headers=send_headers)
        response = conn.getresponse()
        data = json.loads(response.read())
        return response.status, {k.lower(): v for k, v in response.getheaders()}, data
    finally:
        conn.close()


def messages(stub: StubAnthropicServer, body: dict[str, Any] = REQUEST) -> tuple[int, Any, Any]:
    return call(stub, "POST", "/v1/messages", body, HEADERS)


def test_a_messages_call_returns_a_well_formed_message(stub: StubAnthropicServer) -> None:
    status, _, body = messages(stub)

    assert status == 200
    assert body["id"].startswith("msg_")
    assert body["type"] == "message"
    assert body["role"] == "assistant"
    assert body["model"] == "claude-stub"
    assert body["stop_reason"] == "end_turn"
    assert body["stop_sequence"] is None
    assert [block["type"] for block in body["content"]] == ["text"]
    assert "capital of France" in body["content"][0]["text"]
    assert set(body["usage"]) == {
        "input_tokens",
        "output_tokens",
        "cache_creation_input_tokens",
        "cache_read_input_tokens",
        "cache_creation",
    }


def test_the_same_request_always_gets_the_same_reply(stub: StubAnthropicServer) -> None:
    assert messages(stub)[2] == messages(stub)[2]


def test_a_different_system_prompt_changes_the_reply(stub: StubAnthropicServer) -> None:
    other = {**REQUEST, "system": "You are verbose."}
    assert messages(stub)[2]["content"] != messages(stub, other)[2]["content"]


def test_token_counts_are_about_four_characters_each(stub: StubAnthropicServer) -> None:
    # Given a prompt of 4,000 characters
    long_prompt = {**REQUEST, "system": "", "messages": [{"role": "user", "content": "x" * 4000}]}

    # When it is sent
    usage = messages(stub, long_prompt)[2]["usage"]

    # Then it is billed as about 1,000 input tokens
    assert usage["input_tokens"] == 1000
    assert usage["output_tokens"] >= 1


def test_output_is_capped_at_max_tokens(stub: StubAnthropicServer) -> None:
    status, _, body = messages(stub, {**REQUEST, "max_tokens": 3})

    assert status == 200
    assert body["usage"]["output_tokens"] == 3
    assert len(body["content"][0]["text"]) <= 12
    assert body["stop_reason"] == "max_tokens"


def test_scripted_responses_are_consumed_in_order_then_back_to_normal(
    stub: StubAnthropicServer,
) -> None:
    # Given a script of three faults
    stub.script([{"status": 429, "retry_after": 1.5}, {"status": 529}, {"status": 500}])

    # When four calls are made
    statuses = [messages(stub)[0] for _ in range(4)]

    # Then the faults come in order, and the fourth call is answered normally
    assert statuses == [429, 529, 500, 200]


def test_a_scripted_429_carries_retry_after_and_a_rate_limit_error(
    stub: StubAnthropicServer,
) -> None:
    stub.script([{"status": 429, "retry_after": 1.5, "retry_after_ms": 1500}])

    status, headers, body = messages(stub)

    assert status == 429
    assert headers["retry-after"] == "1.5"
    assert headers["retry-after-ms"] == "1500"
    assert body["type"] == "error"
    assert body["error"]["type"] == "rate_limit_error"
    assert body["error"]["message"]


def test_a_scripted_529_is_an_overloaded_error(stub: StubAnthropicServer) -> None:
    stub.script([{"status": 529}])

    status, _, body = messages(stub)

    assert (status, body["error"]["type"]) == (529, "overloaded_error")


def test_a_scripted_success_can_report_cache_tokens_split_by_ttl(
    stub: StubAnthropicServer,
) -> None:
    stub.script(
        [
            {
                "cache_read_input_tokens": 100,
                "cache_creation_input_tokens": 50,
                "cache_creation_1h_input_tokens": 20,
            }
        ]
    )

    usage = messages(stub)[2]["usage"]

    assert usage["cache_read_input_tokens"] == 100
    assert usage["cache_creation_input_tokens"] == 50
    assert usage["cache_creation"] == {
        "ephemeral_5m_input_tokens": 30,
        "ephemeral_1h_input_tokens": 20,
    }


def test_a_scripted_delay_holds_the_response_back(stub: StubAnthropicServer) -> None:
    stub.script([{"delay_s": 0.3}])

    started = time.monotonic()
    status = messages(stub)[0]

    assert status == 200
    assert time.monotonic() - started >= 0.3


def test_a_request_without_an_api_key_is_refused_like_the_real_api(
    stub: StubAnthropicServer,
) -> None:
    # Given a scripted fault waiting
    stub.script([{"status": 529}])

    # When a call comes without credentials
    status, _, body = call(
        stub, "POST", "/v1/messages", REQUEST, {"anthropic-version": "2023-06-01"}
    )

    # Then it gets a 401, and the script is left for a call that authenticates
    assert (status, body["error"]["type"]) == (401, "authentication_error")
    assert messages(stub)[0] == 529


def test_a_bearer_token_is_accepted_as_a_credential(stub: StubAnthropicServer) -> None:
    headers = {"Authorization": "Bearer test-key", "anthropic-version": "2023-06-01"}
    assert call(stub, "POST", "/v1/messages", REQUEST, headers)[0] == 200


def test_a_request_without_an_api_version_is_refused(stub: StubAnthropicServer) -> None:
    status, _, body = call(stub, "POST", "/v1/messages", REQUEST, {"x-api-key": "k"})
    assert (status, body["error"]["type"]) == (400, "invalid_request_error")


def test_a_request_missing_max_tokens_is_refused(stub: StubAnthropicServer) -> None:
    body = {k: v for k, v in REQUEST.items() if k != "max_tokens"}
    assert messages(stub, body)[0] == 400


def test_stats_count_calls_by_status(stub: StubAnthropicServer) -> None:
    stub.script([{"status": 429}, {"status": 429}, {"status": 529}])
    for _ in range(5):
        messages(stub)

    assert stub.stats() == {
        "calls": 5,
        "by_status": {"200": 2, "429": 2, "529": 1},
        "scripted_left": 0,
        "by_request": {},
        "count_tokens_calls": 0,
        "cache_reads": 0,
        "cache_writes": 0,
        "tool_use_replies": 0,
        "in_flight": 0,
        "in_flight_max": 1,  # one call at a time
    }


def test_stats_list_the_statuses_answered_to_each_named_attempt(
    stub: StubAnthropicServer,
) -> None:
    stub.script([{"status": 529}])
    for key in ("step-1:1", "step-1:2", "step-2:1"):
        call(stub, "POST", "/v1/messages", REQUEST, {**HEADERS, "X-Agentyard-Request": key})
    messages(stub)  # a request that names no attempt is counted in `calls` only

    stats = stub.stats()
    assert stats["calls"] == 4
    assert stats["by_request"] == {"step-1:1": [529], "step-1:2": [200], "step-2:1": [200]}


def test_the_script_stats_and_reset_are_controlled_over_http(stub: StubAnthropicServer) -> None:
    # Given a script posted over HTTP
    status, _, body = call(stub, "POST", "/_stub/script", {"responses": [{"status": 503}]})
    assert (status, body) == (200, {"scripted": 1})

    # When a call consumes it
    assert messages(stub)[0] == 503

    # Then the stats endpoint counts it, and reset forgets it
    assert call(stub, "GET", "/_stub/stats")[2]["by_status"] == {"503": 1}
    call(stub, "POST", "/_stub/reset", {})
    assert call(stub, "GET", "/_stub/stats")[2] == {
        "calls": 0,
        "by_status": {},
        "scripted_left": 0,
        "by_request": {},
        "count_tokens_calls": 0,
        "cache_reads": 0,
        "cache_writes": 0,
        "tool_use_replies": 0,
        "in_flight": 0,
        "in_flight_max": 0,
    }


def test_reset_drops_a_pending_script(stub: StubAnthropicServer) -> None:
    stub.script([{"status": 500}])
    stub.reset()
    assert messages(stub)[0] == 200


def test_an_unknown_path_is_not_found(stub: StubAnthropicServer) -> None:
    status, _, body = call(stub, "GET", "/v1/nothing-here", headers=HEADERS)
    assert (status, body["error"]["type"]) == (404, "not_found_error")


def test_base_latency_slows_every_call() -> None:
    with StubAnthropicServer(latency_s=0.2) as slow:
        started = time.monotonic()
        messages(slow)
        assert time.monotonic() - started >= 0.2


def test_the_server_listens_on_loopback_only(stub: StubAnthropicServer) -> None:
    assert stub.base_url == f"http://127.0.0.1:{stub.port}"


def test_stopping_does_not_wait_out_a_scripted_delay() -> None:
    # Given a call stuck in a long scripted delay
    server = StubAnthropicServer().start()
    server.script([{"delay_s": 30}])
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request("POST", "/v1/messages", body=json.dumps(REQUEST), headers=HEADERS)
    time.sleep(0.1)

    # When the server is stopped
    started = time.monotonic()
    server.stop()
    conn.close()

    # Then it stops at once
    assert time.monotonic() - started < 5


# -- prompt caching and token counting -------------------------------------------------------------


class Clock:
    """Monotonic seconds that move only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def cached_stub(clock: Clock) -> Iterator[StubAnthropicServer]:
    """A stub that caches prefixes of 10 tokens or more, on the test's clock."""
    with StubAnthropicServer(min_cache_tokens=10, clock=clock) as server:
        yield server


def block(text: str, ttl: str | None = None) -> dict[str, Any]:
    """A text block that ends a cache breakpoint (with the TTL given, if one is)."""
    control = {"type": "ephemeral", **({"ttl": ttl} if ttl else {})}
    return {"type": "text", "text": text, "cache_control": control}


SYSTEM_80 = "s" * 80  # 20 tokens
PREAMBLE_40 = "p" * 40  # 10 tokens


def cached_request(question: str = "q" * 8, system_ttl: str | None = None) -> dict[str, Any]:
    return {
        **REQUEST,
        "system": [block(SYSTEM_80, system_ttl)],
        "messages": [
            {"role": "user", "content": [block(PREAMBLE_40), {"type": "text", "text": question}]}
        ],
    }


def usage_of(stub: StubAnthropicServer, body: dict[str, Any]) -> dict[str, Any]:
    status, _, reply = messages(stub, body)
    assert status == 200, reply
    usage: dict[str, Any] = reply["usage"]
    return usage


def test_count_tokens_answers_what_a_messages_call_bills_in_all(
    cached_stub: StubAnthropicServer,
) -> None:
    body = cached_request()

    status, _, counted = call(cached_stub, "POST", "/v1/messages/count_tokens", body, HEADERS)
    usage = usage_of(cached_stub, body)

    assert status == 200
    assert counted == {"input_tokens": 20 + 10 + 2}
    assert usage["input_tokens"] == 2
    assert usage["cache_creation_input_tokens"] == 30
    assert cached_stub.stats()["count_tokens_calls"] == 1


def test_count_tokens_needs_no_max_tokens_and_takes_a_query_string(
    stub: StubAnthropicServer,
) -> None:
    body = {k: v for k, v in REQUEST.items() if k != "max_tokens"}

    status, _, counted = call(stub, "POST", "/v1/messages/count_tokens?beta=true", body, HEADERS)

    assert (status, counted) == (
        200,
        {"input_tokens": -(-len("You are terse.What is the capital of France?") // 4)},
    )


@pytest.mark.parametrize("missing", ["model", "messages"])
def test_count_tokens_refuses_a_request_missing_a_required_field(
    stub: StubAnthropicServer, missing: str
) -> None:
    body = {k: v for k, v in REQUEST.items() if k != missing}

    status, _, reply = call(stub, "POST", "/v1/messages/count_tokens", body, HEADERS)

    assert (status, reply["error"]["type"]) == (400, "invalid_request_error")
    assert reply["error"]["message"] == f"{missing}: Field required"


def test_count_tokens_checks_credentials_and_consumes_no_script_entry(
    stub: StubAnthropicServer,
) -> None:
    stub.script([{"status": 529}])

    unauthenticated = call(
        stub, "POST", "/v1/messages/count_tokens", REQUEST, {"anthropic-version": "2023-06-01"}
    )
    unversioned = call(stub, "POST", "/v1/messages/count_tokens", REQUEST, {"x-api-key": "k"})
    counted = call(stub, "POST", "/v1/messages/count_tokens", REQUEST, HEADERS)

    assert [unauthenticated[0], unversioned[0], counted[0]] == [401, 400, 200]
    assert messages(stub)[0] == 529
    assert stub.stats()["count_tokens_calls"] == 3
    assert stub.stats()["calls"] == 1


def test_a_repeated_prefix_is_read_from_the_cache_and_the_rest_is_input(
    cached_stub: StubAnthropicServer,
) -> None:
    # Given a first call that wrote its system prompt and preamble
    first = usage_of(cached_stub, cached_request("q" * 8))

    # When a second call shares both and asks something longer
    second = usage_of(cached_stub, cached_request("q" * 40))

    # Then it reads the longest breakpoint prefix, and its question is plain input
    assert (first["cache_creation_input_tokens"], first["cache_read_input_tokens"]) == (30, 0)
    assert first["cache_creation"] == {
        "ephemeral_5m_input_tokens": 30,
        "ephemeral_1h_input_tokens": 0,
    }
    assert (second["cache_creation_input_tokens"], second["cache_read_input_tokens"]) == (0, 30)
    assert second["input_tokens"] == 10
    assert cached_stub.stats()["cache_writes"] == 1
    assert cached_stub.stats()["cache_reads"] == 1


def test_a_one_hour_breakpoint_is_reported_as_such_and_outlives_five_minutes(
    cached_stub: StubAnthropicServer, clock: Clock
) -> None:
    # Given a 1-hour system prompt breakpoint before a 5-minute preamble breakpoint
    first = usage_of(cached_stub, cached_request(system_ttl="1h"))

    # When a call comes ten minutes later
    clock.now += 10 * 60
    later = usage_of(cached_stub, cached_request(system_ttl="1h"))

    # Then the first call's writes were split by TTL, and only the 1-hour prefix is left to read
    assert first["cache_creation"] == {
        "ephemeral_5m_input_tokens": 10,
        "ephemeral_1h_input_tokens": 20,
    }
    assert later["cache_read_input_tokens"] == 20
    assert later["cache_creation_input_tokens"] == 10
    assert later["cache_creation"] == {
        "ephemeral_5m_input_tokens": 10,
        "ephemeral_1h_input_tokens": 0,
    }


def test_a_read_refreshes_the_entry_it_read(cached_stub: StubAnthropicServer, clock: Clock) -> None:
    usage_of(cached_stub, cached_request())
    for _ in range(3):  # each four minutes after the last: twelve in all, the entry kept alive
        clock.now += 4 * 60
        assert usage_of(cached_stub, cached_request())["cache_read_input_tokens"] == 30


def test_the_cache_is_per_model(cached_stub: StubAnthropicServer) -> None:
    usage_of(cached_stub, cached_request())

    other = usage_of(cached_stub, {**cached_request(), "model": "claude-other"})

    assert (other["cache_creation_input_tokens"], other["cache_read_input_tokens"]) == (30, 0)


def test_a_different_system_prompt_misses_the_preamble_prefix_too(
    cached_stub: StubAnthropicServer,
) -> None:
    usage_of(cached_stub, cached_request())

    other = usage_of(cached_stub, {**cached_request(), "system": [block("t" * 80)]})

    assert (other["cache_creation_input_tokens"], other["cache_read_input_tokens"]) == (30, 0)


def test_a_failed_call_neither_writes_nor_reads_the_cache(
    cached_stub: StubAnthropicServer,
) -> None:
    cached_stub.script([{"status": 529}])
    assert messages(cached_stub, cached_request())[0] == 529

    first = usage_of(cached_stub, cached_request())

    assert first["cache_creation_input_tokens"] == 30
    assert cached_stub.stats()["cache_writes"] == 1


def test_scripted_usage_overrides_what_the_cache_did_which_still_happens(
    cached_stub: StubAnthropicServer,
) -> None:
    cached_stub.script([{"cache_creation_input_tokens": 7, "input_tokens": 3}])

    scripted = usage_of(cached_stub, cached_request())
    after = usage_of(cached_stub, cached_request())

    assert (scripted["input_tokens"], scripted["cache_creation_input_tokens"]) == (3, 7)
    assert scripted["cache_creation"] == {
        "ephemeral_5m_input_tokens": 7,
        "ephemeral_1h_input_tokens": 0,
    }
    assert after["cache_read_input_tokens"] == 30


def test_reset_empties_the_cache(cached_stub: StubAnthropicServer) -> None:
    usage_of(cached_stub, cached_request())
    call(cached_stub, "POST", "/_stub/reset", {})

    again = usage_of(cached_stub, cached_request())

    assert (again["cache_creation_input_tokens"], again["cache_read_input_tokens"]) == (30, 0)


def test_a_prefix_under_the_default_minimum_is_not_cached(stub: StubAnthropicServer) -> None:
    usage_of(stub, cached_request())

    usage = usage_of(stub, cached_request())

    assert (usage["cache_creation_input_tokens"], usage["cache_read_input_tokens"]) == (0, 0)
    assert usage["input_tokens"] == 32


def test_more_than_four_breakpoints_are_refused_like_the_real_api(
    cached_stub: StubAnthropicServer,
) -> None:
    cached_stub.script([{"status": 529}])
    body = {
        **REQUEST,
        "system": [block("a" * 40), block("b" * 40)],
        "messages": [{"role": "user", "content": [block("c"), block("d"), block("e")]}],
    }

    status, _, reply = messages(cached_stub, body)

    assert (status, reply["error"]["type"]) == (400, "invalid_request_error")
    assert "maximum of 4 blocks with cache_control" in reply["error"]["message"]
    assert messages(cached_stub)[0] == 529  # the refused call consumed no script entry


# -- tool use --------------------------------------------------------------------------------------

TOOL = {
    "name": "lookup",
    "description": "Looks a word up.",
    "input_schema": {"type": "object", "properties": {"word": {"type": "string"}}},
}


def tool_turns(result_id: str = "toolu_1", answer: str = "6650 km") -> dict[str, Any]:
    """A request whose assistant turn called ``lookup`` (id ``toolu_1``), answered by a result
    for ``result_id``."""
    return {
        **REQUEST,
        "tools": [TOOL],
        "messages": [
            REQUEST["messages"][0],
            {
                "role": "assistant",
                "content": [
                    {"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {"word": "x"}}
                ],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": result_id, "content": answer}],
            },
        ],
    }


def test_a_scripted_tool_call_is_a_tool_use_reply_with_ids_made_from_the_request(
    stub: StubAnthropicServer,
) -> None:
    # Given a script entry that has the model say a word and call two tools
    calls = [{"name": "lookup", "input": {"word": "Nile"}}, {"name": "lookup", "input": {}}]
    entry = {"text": "Looking.", "tool_use": calls}
    stub.script([entry, entry])
    body = {**REQUEST, "tools": [TOOL]}

    # When the same request is made twice
    status, _, reply = messages(stub, body)
    again = messages(stub, body)[2]

    # Then the reply is the text, then one tool_use block per call, and stops for the tools
    assert status == 200 and reply["stop_reason"] == "tool_use"
    text, first, second = reply["content"]
    assert text == {"type": "text", "text": "Looking."}
    assert (first["type"], first["name"], first["input"]) == (
        "tool_use",
        "lookup",
        {"word": "Nile"},
    )
    assert re.fullmatch(r"toolu_stub_[0-9a-f]{12}", first["id"]) and first["id"] != second["id"]
    assert again["content"] == reply["content"]
    written = "Looking." + 'lookup{"word": "Nile"}' + "lookup{}"
    assert reply["usage"]["output_tokens"] == -(-len(written) // 4)
    assert stub.stats()["tool_use_replies"] == 2


def test_tool_calls_that_do_not_fit_max_tokens_are_left_out(stub: StubAnthropicServer) -> None:
    word = "w" * 30
    stub.script([{"tool_use": [{"name": "lookup", "input": {"word": word}}] * 3}])

    reply = messages(stub, {**REQUEST, "tools": [TOOL], "max_tokens": 25})[2]

    assert reply["stop_reason"] == "max_tokens"
    assert [b["type"] for b in reply["content"]] == ["tool_use", "tool_use"]
    assert reply["usage"]["output_tokens"] == 25


def test_tool_definitions_results_and_calls_are_counted_as_input(
    stub: StubAnthropicServer,
) -> None:
    body = tool_turns(answer="r" * 400)

    counted = call(stub, "POST", "/v1/messages/count_tokens", body, HEADERS)[2]["input_tokens"]

    definition = "lookupLooks a word up." + json.dumps(TOOL["input_schema"], sort_keys=True)
    every = definition + "You are terse.What is the capital of France?" + 'lookup{"word": "x"}'
    assert counted == -(-len(every + "r" * 400) // 4)
    assert usage_of(stub, body)["input_tokens"] == counted


def test_the_default_reply_to_tool_results_quotes_them(stub: StubAnthropicServer) -> None:
    reply = messages(stub, tool_turns(answer="6650 km"))[2]

    assert reply["stop_reason"] == "end_turn"
    assert reply["content"][0]["text"].endswith(": 6650 km")


@pytest.mark.parametrize(
    ("tool", "message"),
    [
        ({"name": "lookup"}, "tools.0.custom.input_schema: Field required"),
        ({"input_schema": {"type": "object"}}, "tools.0.custom.name: Field required"),
        ({**TOOL, "name": "look up"}, "tools.0.custom.name: String should match pattern"),
        ({**TOOL, "input_schema": {"type": "string"}}, "tools.0.custom.input_schema.type"),
    ],
)
def test_a_malformed_tool_is_refused_like_the_real_api(
    stub: StubAnthropicServer, tool: dict[str, Any], message: str
) -> None:
    status, _, reply = messages(stub, {**REQUEST, "tools": [tool]})

    assert (status, reply["error"]["type"]) == (400, "invalid_request_error")
    assert reply["error"]["message"].startswith(message)


def test_two_tools_of_one_name_are_refused(stub: StubAnthropicServer) -> None:
    status, _, reply = messages(stub, {**REQUEST, "tools": [TOOL, TOOL]})

    assert status == 400 and "Tool names must be unique" in reply["error"]["message"]


def test_a_tool_call_must_be_answered_at_the_start_of_the_next_turn(
    stub: StubAnthropicServer,
) -> None:
    # Given a result that comes after text in the turn that answers the call
    body = tool_turns()
    body["messages"][2]["content"].insert(0, {"type": "text", "text": "Here:"})
    stub.script([{"status": 529}])

    # When it is sent, Then it is refused with the API's words, before the script is read
    status, _, reply = messages(stub, body)
    assert (status, reply["error"]["type"]) == (400, "invalid_request_error")
    assert reply["error"]["message"] == (
        "messages.1: `tool_use` ids were found without `tool_result` blocks immediately after: "
        "toolu_1. Each `tool_use` block must have a corresponding `tool_result` block in the "
        "next message."
    )
    assert messages(stub, tool_turns())[0] == 529


def test_a_tool_call_in_the_last_turn_is_refused(stub: StubAnthropicServer) -> None:
    body = tool_turns()
    body["messages"] = body["messages"][:2]

    status, _, reply = messages(stub, body)

    assert status == 400 and "without `tool_result` blocks" in reply["error"]["message"]


def test_a_result_for_an_unknown_call_is_refused(stub: StubAnthropicServer) -> None:
    status, _, reply = messages(stub, tool_turns(result_id="toolu_2"))

    assert status == 400
    assert reply["error"]["message"].startswith("messages.1: `tool_use` ids were found")
    body = tool_turns()
    body["messages"][2]["content"].append(
        {"type": "tool_result", "tool_use_id": "toolu_2", "content": "?"}
    )
    status, _, reply = messages(stub, body)
    assert status == 400
    assert reply["error"]["message"].startswith(
        "messages.2.content.1: unexpected `tool_use_id` found in `tool_result` blocks: toolu_2."
    )


def test_a_script_with_a_nameless_tool_call_is_refused_when_posted(
    stub: StubAnthropicServer,
) -> None:
    script = {"responses": [{"tool_use": [{"input": {}}]}]}

    status, _, reply = call(stub, "POST", "/_stub/script", script)

    assert status == 400 and "responses.0.tool_use" in reply["error"]["message"]
    assert stub.stats()["scripted_left"] == 0
