"""A local server that speaks enough of the Anthropic Messages API for the real SDK.

Tests and demos point the official ``anthropic`` client at it (``AGENTYARD_ANTHROPIC_BASE_URL``) so
the code path is the real one, HTTP included, without the internet or a bill. Replies are
deterministic: the same request always gets the same text and token counts (about four characters
per token, output capped at ``max_tokens``).

Input tokens count every block's text at about four characters a token: a text block's text, a
tool call's name and input (as JSON), a tool result's content, a thinking block's text, and each
tool offered (its name, description and input schema as JSON).

Prompt caching is simulated as the real API does it. The request's content blocks are read in
order (the tools offered, the system prompt's, then each message's; a string is one block without
``cache_control``), and each block that carries ``cache_control`` ends a breakpoint: the prefix up
to and including it. The stub keeps the prefixes it has cached (by a digest of the model and the
prefix's blocks, ``cache_control`` left out) with an expiry: 5 minutes, or 1 hour for a
breakpoint whose ``cache_control`` says ``"ttl": "1h"``, on a monotonic clock (``clock=``, for
tests). A call reads the longest of its breakpoint prefixes still cached
(``cache_read_input_tokens``) and refreshes that entry's expiry; it writes its longer breakpoint
prefixes (``cache_creation_input_tokens``: the longest one's tokens less those read, split by TTL
in ``usage.cache_creation``); ``input_tokens`` is the rest. A prefix under ``min_cache_tokens``
(1024 by default, as the real API's minimum for Sonnet and Opus models) is neither written nor
read. Only calls answered 200 touch the cache; a request with more than 4 breakpoints is refused
with a 400, as the real API refuses it.

Tool use is checked as the real API checks it, with its 400 ``invalid_request_error`` and its
wording: each of ``tools`` needs a ``name`` (letters, digits, ``_`` and ``-``, unique) and an
``input_schema`` of type ``object`` (``description`` is optional); every ``tool_use`` in an
assistant turn must be answered by a ``tool_result`` with its id at the start of the next (user)
turn; a ``tool_result`` must answer a ``tool_use`` of the turn before it.

``POST /v1/messages/count_tokens`` answers ``{"input_tokens": n}``: what ``/v1/messages`` would
bill the same body for in all (input, cache writes and cache reads). It is checked like a
messages call (credentials, version, ``model`` and ``messages``), consumes no script entry and
touches no cache (it is checked for tool use too).

Faults are scripted over HTTP, one entry consumed per ``POST /v1/messages`` call, in order::

    POST /_stub/script  {"responses": [{"status": 429, "retry_after": 1.5}, {"delay_s": 5},
                                       {"status": 200, "cache_read_input_tokens": 100}]}
    GET  /_stub/stats   -> {"calls": N, "by_status": {"200": n, ...}, "scripted_left": n,
                            "by_request": {"<step id>:<attempt>": [200, ...], ...},
                            "count_tokens_calls": n, "cache_reads": n, "cache_writes": n,
                            "tool_use_replies": n, "in_flight": n, "in_flight_max": n}
    POST /_stub/reset   -> forgets the script, the counts and the cache

``calls``, ``by_status`` and ``by_request`` count messages calls only; ``cache_reads`` and
``cache_writes`` count the calls that read from and wrote to the cache; ``tool_use_replies``
the replies that asked for tools; ``in_flight`` the messages calls received and not answered
yet, now, and ``in_flight_max`` the most at once since the start (or the last reset).

An entry may carry ``status`` (default 200), ``delay_s``, ``trickle_s`` (the body is sent in
small pieces spread over that many seconds, after the headers), ``retry_after`` (seconds),
``retry_after_ms``, ``error_type``, ``message`` and ``error_code`` (``error.details.error_code``,
e.g. ``enforced_spend_limit_reached``); a 200 entry may override ``text``, ``thinking``,
``input_tokens``, ``output_tokens``, ``cache_creation_input_tokens`` (and how many of them were
1-hour writes, ``cache_creation_1h_input_tokens``: usage carries the split by TTL as the real API
does) and ``cache_read_input_tokens``: the usage reported, whatever the simulated cache did
(which it still does). A new script replaces the one still pending.

A 200 entry may also ask for tools, as the model does: ``"tool_use": [{"name": "search",
"input": {"query": "rivers"}}, ...]``. The reply's content is then the entry's ``text`` as a
text block (only if it has one), then one ``tool_use`` block per item, in order, with ids
``toolu_stub_<12 hex>`` made from the request and the item's index (the same request gets the
same ids), and ``stop_reason`` is ``"tool_use"`` (``"max_tokens"`` if ``max_tokens`` ends the
reply first: the calls that did not fit are left out). The names are not checked against the
request's ``tools``: a script may have the model call a tool it was not offered. An entry whose
``tool_use`` items lack a ``name`` is refused when scripted.

Any key is accepted, as ``x-api-key`` or as ``Authorization: Bearer`` (how SDK 2.x sends it); a
request with neither gets the real API's 401 before the script is looked at.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import re
import socket
import sys
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

from workers.providers.base import REQUEST_KEY_HEADER

log = logging.getLogger(__name__)

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}
USAGE_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cache_creation_input_tokens",
    "cache_read_input_tokens",
)
# The real API's shortest cacheable prefix for Sonnet and Opus models (Haiku's is longer).
MIN_CACHE_TOKENS = 1024
MAX_BREAKPOINTS = 4
TTL_S = {"5m": 300.0, "1h": 3600.0}
TOOL_NAME = re.compile(r"[a-zA-Z0-9_-]{1,128}")


@dataclass(frozen=True, slots=True)
class Breakpoint:
    """A prefix of a request that ends with a block carrying ``cache_control``."""

    tokens: int
    digest: str
    ttl_s: float


@dataclass(frozen=True, slots=True)
class CacheUse:
    """What one call read from the prompt cache and wrote to it, in tokens (``written_1h`` is
    the part of ``written`` under the 1-hour TTL)."""

    read: int = 0
    written: int = 0
    written_1h: int = 0


class StubState:
    """The script, the counters and the prompt cache one stub server shares between its
    handler threads. ``clock`` (monotonic seconds) times the cache's entries."""

    def __init__(
        self,
        latency_s: float = 0.0,
        min_cache_tokens: int = MIN_CACHE_TOKENS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.latency_s = latency_s
        self.min_cache_tokens = min_cache_tokens
        self.clock = clock
        # Set when the server stops, so a handler sleeping out a scripted delay wakes up at once.
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._script: deque[dict[str, Any]] = deque()
        self._by_status: Counter[int] = Counter()
        self._by_request: dict[str, list[int]] = {}
        self._count_tokens_calls = 0
        self._cache: dict[str, float] = {}  # prefix digest -> when it expires, on `clock`
        self._cache_reads = 0
        self._cache_writes = 0
        self._tool_use_replies = 0
        self._in_flight = 0
        self._in_flight_max = 0

    @contextlib.contextmanager
    def answering(self, reply: Reply) -> Iterator[None]:
        """While a server waits to send ``reply``: a messages call (one with ``sent``) is in
        flight, and once the wait is over, counted as answered. Both servers wait in it."""
        if reply.sent is None:
            yield
            return
        with self._lock:
            self._in_flight += 1
            self._in_flight_max = max(self._in_flight_max, self._in_flight)
        try:
            yield
            reply.sent()
        finally:
            with self._lock:
                self._in_flight -= 1

    @property
    def in_flight(self) -> int:
        """Messages calls received and not answered yet."""
        with self._lock:
            return self._in_flight

    def script(self, responses: list[dict[str, Any]]) -> None:
        """Answer the next calls with ``responses``, in order. Raises ``ValueError`` for an
        entry the stub cannot answer with (a ``tool_use`` item without a name)."""
        for index, entry in enumerate(responses):
            calls = entry.get("tool_use") if isinstance(entry, dict) else None
            if calls is None:
                continue
            if not isinstance(calls, list) or not all(
                isinstance(c, dict) and isinstance(c.get("name"), str) for c in calls
            ):
                raise ValueError(
                    f"responses.{index}.tool_use: expected a list of "
                    '{"name": ..., "input": {...}} objects'
                )
        with self._lock:
            self._script = deque(dict(r) for r in responses)

    def next_entry(self) -> dict[str, Any]:
        with self._lock:
            return self._script.popleft() if self._script else {}

    def record(
        self, status: int, request_key: str | None = None, *, tool_use: bool = False
    ) -> None:
        with self._lock:
            self._by_status[status] += 1
            if request_key:
                self._by_request.setdefault(request_key, []).append(status)
            self._tool_use_replies += tool_use

    def record_count_tokens(self) -> None:
        with self._lock:
            self._count_tokens_calls += 1

    def use_cache(self, breakpoints: list[Breakpoint]) -> CacheUse:
        """Read the longest of ``breakpoints`` still cached (refreshing its expiry) and write
        the longer ones; those under ``min_cache_tokens`` are passed over."""
        with self._lock:
            now = self.clock()
            self._cache = {d: t for d, t in self._cache.items() if t > now}  # expired: forgotten
            points = [b for b in breakpoints if b.tokens >= self.min_cache_tokens]
            hit = next(
                (i for i in reversed(range(len(points))) if points[i].digest in self._cache), -1
            )
            read = 0
            if hit >= 0:
                read = points[hit].tokens
                self._cache[points[hit].digest] = max(
                    self._cache[points[hit].digest], now + points[hit].ttl_s
                )
                self._cache_reads += 1
            written = written_1h = 0
            covered = read
            for point in points[hit + 1 :]:
                # The tokens between the previous breakpoint and this one take this one's TTL.
                segment = max(0, point.tokens - covered)
                written += segment
                written_1h += segment if point.ttl_s > TTL_S["5m"] else 0
                covered = max(covered, point.tokens)
                self._cache[point.digest] = now + point.ttl_s  # not cached: it would be the hit
            if len(points) > hit + 1:
                self._cache_writes += 1
            return CacheUse(read, written, written_1h)

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "calls": self._by_status.total(),
                "by_status": {str(s): n for s, n in sorted(self._by_status.items())},
                "scripted_left": len(self._script),
                "by_request": {k: list(v) for k, v in self._by_request.items()},
                "count_tokens_calls": self._count_tokens_calls,
                "cache_reads": self._cache_reads,
                "cache_writes": self._cache_writes,
                "tool_use_replies": self._tool_use_replies,
                "in_flight": self._in_flight,
                "in_flight_max": self._in_flight_max,
            }

    def reset(self) -> None:
        with self._lock:
            self._script.clear()
            self._by_status.clear()
            self._by_request.clear()
            self._count_tokens_calls = 0
            self._cache.clear()
            self._cache_reads = 0
            self._cache_writes = 0
            self._tool_use_replies = 0
            self._in_flight_max = self._in_flight


def _text_of(content: Any) -> str:
    """The text of a message or system prompt: a string or a list of content blocks."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(b.get("text", "") for b in content if isinstance(b, dict))
    return ""


def _block_text(block: dict[str, Any], *, offered: bool = False) -> str:
    """The text a block puts before the model, for counting: a text block's text, a tool call's
    name and input as JSON, a tool result's content, a thinking block's text, and for a tool
    ``offered`` (a definition in ``tools``) its name, description and input schema as JSON."""
    if offered:
        schema = json.dumps(block.get("input_schema", {}), sort_keys=True)
        return f"{block.get('name', '')}{block.get('description', '')}{schema}"
    kind = block.get("type")
    if kind == "tool_use":
        return f"{block.get('name', '')}{json.dumps(block.get('input', {}), sort_keys=True)}"
    if kind == "tool_result":
        return _text_of(block.get("content", ""))
    if kind == "thinking":
        return str(block.get("thinking", ""))
    return str(block.get("text", ""))


def _turn_text(content: Any) -> str:
    """What a turn says: its text, and the content of the tool results it carries."""
    if isinstance(content, list):
        return "".join(
            _block_text(b)
            for b in content
            if isinstance(b, dict) and b.get("type") in ("text", "tool_result")
        )
    return _text_of(content)


def _tokens(text: str) -> int:
    return max(1, math.ceil(len(text) / 4))


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def prompt_tokens(body: dict[str, Any]) -> int:
    """Every input token of ``body`` (input, cache writes and cache reads together): the text of
    its tools, system prompt and messages at about four characters a token."""
    return _tokens("".join(_block_text(b, offered=w == "tools") for w, b in _blocks(body)))


def _blocks(body: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The request's content blocks in the order the model reads them, each with where it is:
    ``tools`` (a tool's definition), ``system`` or ``<message index>:<role>``. A string is one
    text block."""

    def blocks_of(content: Any) -> list[dict[str, Any]]:
        if isinstance(content, str):
            return [{"type": "text", "text": content}]
        if isinstance(content, list):
            return [b for b in content if isinstance(b, dict)]
        return []

    tools = body.get("tools")
    found = [("tools", t) for t in tools if isinstance(t, dict)] if isinstance(tools, list) else []
    found += [("system", b) for b in blocks_of(body.get("system") or [])]
    for index, message in enumerate(body.get("messages") or []):
        if isinstance(message, dict):
            where = f"{index}:{message.get('role')}"
            found += [(where, b) for b in blocks_of(message.get("content"))]
    return found


def breakpoints(body: dict[str, Any]) -> list[Breakpoint]:
    """Each prefix of ``body`` that ends with a block carrying ``cache_control``, shortest first:
    its tokens (counted as ``prompt_tokens`` counts), its digest (the model and the prefix's
    blocks as canonical JSON, ``cache_control`` left out) and its TTL."""
    prefix: list[Any] = []
    chars = 0
    found: list[Breakpoint] = []
    for where, block in _blocks(body):
        prefix.append([where, {k: v for k, v in block.items() if k != "cache_control"}])
        chars += len(_block_text(block, offered=where == "tools"))
        control = block.get("cache_control")
        if isinstance(control, dict):
            canonical = json.dumps(
                prefix, sort_keys=True, separators=(",", ":"), ensure_ascii=False
            )
            digest = hashlib.sha256(f"{body.get('model')}\n{canonical}".encode()).hexdigest()
            ttl_s = TTL_S.get(str(control.get("ttl", "5m")), TTL_S["5m"])
            found.append(Breakpoint(math.ceil(chars / 4), digest, ttl_s))
    return found


def tool_use_refusal(body: dict[str, Any]) -> str | None:
    """What the real API would say (400 ``invalid_request_error``) about ``body``'s tools and
    the way its turns pair tool calls with their results, or None if it is well formed."""
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            return "tools: Input should be a valid list"
        names: set[str] = set()
        for index, tool in enumerate(tools):
            if not isinstance(tool, dict):
                return f"tools.{index}: Input should be a valid dictionary"
            if tool.get("type") not in (None, "custom"):
                continue  # a server tool: its own fields, not checked here
            for required in ("name", "input_schema"):
                if required not in tool:
                    return f"tools.{index}.custom.{required}: Field required"
            name, schema = tool["name"], tool["input_schema"]
            if not isinstance(name, str) or not TOOL_NAME.fullmatch(name):
                return (
                    f"tools.{index}.custom.name: String should match pattern "
                    f"'^{TOOL_NAME.pattern}$'"
                )
            if not isinstance(schema, dict) or schema.get("type") != "object":
                return f"tools.{index}.custom.input_schema.type: Input should be 'object'"
            if name in names:
                return f"tools: Tool names must be unique. Found {name!r} more than once."
            names.add(name)
    calls: list[str] = []  # the ids of the tool calls the turn before asked for
    asked_at = -1
    for index, message in enumerate(body.get("messages") or []):
        if not isinstance(message, dict):
            continue
        content = message.get("content")
        blocks = [b for b in content if isinstance(b, dict)] if isinstance(content, list) else []
        role = message.get("role")
        if calls:
            answered: list[str] = []
            for block in blocks if role == "user" else []:
                if block.get("type") != "tool_result":
                    break  # results must open the turn
                answered.append(str(block.get("tool_use_id")))
            missing = [c for c in calls if c not in answered]
            if missing:
                return _unanswered(asked_at, missing)
        for at, block in enumerate(blocks if role == "user" else []):
            if block.get("type") == "tool_result" and block.get("tool_use_id") not in calls:
                return (
                    f"messages.{index}.content.{at}: unexpected `tool_use_id` found in "
                    f"`tool_result` blocks: {block.get('tool_use_id')}. Each `tool_result` block "
                    "must have a corresponding `tool_use` block in the previous message."
                )
        calls = [
            str(b.get("id")) for b in blocks if role == "assistant" and b.get("type") == "tool_use"
        ]
        asked_at = index
    return _unanswered(asked_at, calls) if calls else None


def _unanswered(index: int, calls: list[str]) -> str:
    return (
        f"messages.{index}: `tool_use` ids were found without `tool_result` blocks immediately "
        f"after: {', '.join(calls)}. Each `tool_use` block must have a corresponding "
        "`tool_result` block in the next message."
    )


def build_message(
    body: dict[str, Any], entry: dict[str, Any], cache: CacheUse | None = None
) -> dict[str, Any]:
    """The Messages API reply to ``body``: deterministic text, usage counted at ~4 chars a token,
    ``cache`` (what the call read from the prompt cache and wrote to it) taken out of the input.
    Usage fields in ``entry`` override the counts."""
    cache = cache or CacheUse()
    system = _text_of(body.get("system", ""))
    messages = body["messages"]
    last_user = next(
        (_turn_text(m.get("content")) for m in reversed(messages) if m.get("role") == "user"), ""
    )
    max_tokens = int(body["max_tokens"])
    message_id = _digest(json.dumps(body, sort_keys=True))
    calls = entry.get("tool_use") or []
    text = entry.get("text") or (
        ""
        if calls
        else f"stub reply (system {_digest(system)}, user {_digest(last_user)}): {last_user[:200]}"
    )
    stop_reason = "tool_use" if calls else "end_turn"
    if _tokens(text) > max_tokens:
        text, stop_reason, calls = text[: max_tokens * 4], "max_tokens", []
    content: list[dict[str, Any]] = []
    if entry.get("thinking"):
        content.append({"type": "thinking", "thinking": entry["thinking"], "signature": "stub"})
    if text or not calls:
        content.append({"type": "text", "text": text})
    written = text
    for index, call in enumerate(calls):
        block = {
            "type": "tool_use",
            "id": f"toolu_stub_{_digest(f'{message_id}:{index}')}",
            "name": call["name"],
            "input": dict(call.get("input") or {}),
        }
        if _tokens(written + _block_text(block)) > max_tokens:
            stop_reason = "max_tokens"  # the calls that did not fit are left out
            break
        written += _block_text(block)
        content.append(block)
    usage: dict[str, Any] = {
        "input_tokens": prompt_tokens(body) - cache.read - cache.written,
        "output_tokens": max_tokens if stop_reason == "max_tokens" else _tokens(written),
        "cache_creation_input_tokens": cache.written,
        "cache_read_input_tokens": cache.read,
    }
    usage.update({k: int(entry[k]) for k in USAGE_FIELDS if k in entry})
    # The split of the cache writes by TTL, as the real API reports it (as simulated, unless the
    # script set the writes: then all 5-minute unless it says how many were 1-hour writes).
    written = usage["cache_creation_input_tokens"]
    simulated_1h = 0 if "cache_creation_input_tokens" in entry else cache.written_1h
    one_hour = min(written, int(entry.get("cache_creation_1h_input_tokens", simulated_1h)))
    usage["cache_creation"] = {
        "ephemeral_5m_input_tokens": written - one_hour,
        "ephemeral_1h_input_tokens": one_hour,
    }
    return {
        "id": f"msg_stub_{message_id}",
        "type": "message",
        "role": "assistant",
        "content": content,
        "model": body["model"],
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": usage,
    }


def error_body(
    status: int, message: str, *, error_type: str | None = None, error_code: str | None = None
) -> dict[str, Any]:
    """An error body shaped like the real API's, so the SDK picks its exception class."""
    default_type = "api_error" if status >= 500 else "invalid_request_error"
    error: dict[str, Any] = {
        "type": error_type or ERROR_TYPES.get(status, default_type),
        "message": message,
    }
    if error_code:
        error["details"] = {"error_code": error_code}
    return {"type": "error", "error": error, "request_id": f"req_stub_{uuid.uuid4().hex[:16]}"}


@dataclass(frozen=True, slots=True)
class Reply:
    """What the stub answers one request with: sent after ``wait_s`` (the stub's latency and
    the entry's delay), its body spread over ``trickle_s``; ``sent`` (if any) is called just
    before it goes, to count it."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    wait_s: float = 0.0
    trickle_s: float = 0.0
    sent: Callable[[], None] | None = None

    def encoded(self) -> tuple[bytes, list[tuple[str, str]]]:
        """The body as bytes, and every header to send with it."""
        data = json.dumps(self.body).encode()
        request_id = self.body.get("request_id") or f"req_stub_{uuid.uuid4().hex[:16]}"
        headers = [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(data))),
            ("request-id", str(request_id)),
            *self.headers.items(),
        ]
        return data, headers


class StubApp:
    """What the stub answers, whatever carries the requests (the threaded server here, the
    asyncio one in ``stub_anthropic_async``): a request's method, path, headers (names in lower
    case) and body in, a ``Reply`` out. The waiting is the server's to do."""

    def __init__(self, state: StubState) -> None:
        self.state = state

    def handle(self, method: str, path: str, headers: dict[str, str], raw: bytes) -> Reply:
        state = self.state
        route = path.split("?")[0]
        if method == "GET":
            if path == "/_stub/stats":
                return Reply(200, state.stats())
            return Reply(404, error_body(404, f"Not found: {path}"))
        try:
            body = _json_object(raw)
        except ValueError as exc:
            return Reply(400, error_body(400, f"Request body is not valid JSON: {exc}"))
        if path == "/_stub/script":
            try:
                state.script(body.get("responses", []))
            except ValueError as exc:
                return Reply(400, error_body(400, str(exc)))
            return Reply(200, {"scripted": len(body.get("responses", []))})
        if path == "/_stub/reset":
            state.reset()
            return Reply(200, {"reset": True})
        if route == "/v1/messages":
            return self._messages(headers, body)
        if route == "/v1/messages/count_tokens":
            return self._count_tokens(headers, body)
        return Reply(404, error_body(404, f"Not found: {path}"))

    def _messages(self, headers: dict[str, str], body: dict[str, Any]) -> Reply:
        state = self.state
        reply = self._answer(headers, body)
        asked = any(b.get("type") == "tool_use" for b in reply.body.get("content") or [])
        key = headers.get(REQUEST_KEY_HEADER.lower())

        def sent() -> None:
            state.record(reply.status, key, tool_use=asked)

        return Reply(
            reply.status,
            reply.body,
            reply.headers,
            state.latency_s + reply.wait_s,
            reply.trickle_s,
            sent,
        )

    def _count_tokens(self, headers: dict[str, str], body: dict[str, Any]) -> Reply:
        state = self.state
        state.record_count_tokens()
        refusal = self._refusal(headers, body, ("model", "messages"))
        if refusal is not None:
            return refusal
        return Reply(200, {"input_tokens": prompt_tokens(body)}, wait_s=state.latency_s)

    def _refusal(
        self, headers: dict[str, str], body: dict[str, Any], required: tuple[str, ...]
    ) -> Reply | None:
        """The real API's answer to a request it refuses before looking at the model, if it does.
        Checked in its order: credentials, version header, then the request."""
        auth = headers.get("authorization", "")
        if not headers.get("x-api-key") and not auth.startswith("Bearer "):
            return Reply(401, error_body(401, "x-api-key header is required"))
        if not headers.get("anthropic-version"):
            return Reply(400, error_body(400, "anthropic-version: header is required"))
        missing = [f for f in required if f not in body]
        if missing:
            return Reply(400, error_body(400, f"{missing[0]}: Field required"))
        marked = sum(isinstance(b.get("cache_control"), dict) for _, b in _blocks(body))
        if marked > MAX_BREAKPOINTS:
            message = (
                f"A maximum of {MAX_BREAKPOINTS} blocks with cache_control may be provided. "
                f"Found {marked}."
            )
            return Reply(400, error_body(400, message))
        refused = tool_use_refusal(body)
        if refused is not None:
            return Reply(400, error_body(400, refused))
        return None

    def _answer(self, headers: dict[str, str], body: dict[str, Any]) -> Reply:
        # Checked in the real API's order: credentials, version header, the request, then the model.
        refusal = self._refusal(headers, body, ("model", "max_tokens", "messages"))
        if refusal is not None:
            return refusal
        entry = self.state.next_entry()
        status = int(entry.get("status", 200))
        extra: dict[str, str] = {}
        if "retry_after" in entry:
            extra["retry-after"] = str(entry["retry_after"])
        if "retry_after_ms" in entry:
            extra["retry-after-ms"] = str(entry["retry_after_ms"])
        delay_s = float(entry.get("delay_s", 0.0))
        trickle_s = float(entry.get("trickle_s", 0.0))
        if status == 200:
            cache = self.state.use_cache(breakpoints(body))
            return Reply(200, build_message(body, entry, cache), extra, delay_s, trickle_s)
        message = entry.get("message") or {
            429: "Number of request tokens has exceeded your per-minute rate limit",
            529: "Overloaded",
        }.get(status, f"Scripted stub error {status}")
        error = error_body(
            status, message, error_type=entry.get("error_type"), error_code=entry.get("error_code")
        )
        return Reply(status, error, extra, delay_s)


def _json_object(raw: bytes) -> dict[str, Any]:
    data = json.loads(raw or b"{}")
    if not isinstance(data, dict):
        raise ValueError("expected a JSON object")
    return data


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.1 keeps the SDK's pooled connections alive, as the real API does.
    protocol_version = "HTTP/1.1"
    server: _StubHTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("stub-anthropic %s", format % args)

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def _serve(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        headers = {name.lower(): value for name, value in self.headers.items()}
        reply = self.server.app.handle(method, self.path, headers, raw)
        state = self.server.app.state
        with state.answering(reply):
            # Stopping the server wakes this wait; the reply then goes to a client that has gone.
            if reply.wait_s > 0:
                state.stopping.wait(reply.wait_s)
        self._send(reply)

    def _send(self, reply: Reply) -> None:
        data, headers = reply.encoded()
        with contextlib.suppress(OSError):  # the client may have timed out and gone
            self.send_response(reply.status)
            for name, value in headers:
                self.send_header(name, value)
            self.end_headers()
            if reply.trickle_s <= 0:
                self.wfile.write(data)
                return
            self.wfile.flush()
            for piece, pause_s in trickled(data, reply.trickle_s):
                if self.server.app.state.stopping.wait(pause_s):
                    return
                self.wfile.write(piece)
                self.wfile.flush()


def trickled(data: bytes, over_s: float) -> list[tuple[bytes, float]]:
    """``data`` in at most 20 pieces, each to be sent after its pause, over ``over_s``."""
    pieces = max(1, min(len(data), 20))
    size = -(-len(data) // pieces)
    return [(data[start : start + size], over_s / pieces) for start in range(0, len(data), size)]


class _StubHTTPServer(ThreadingHTTPServer):
    # Handler threads are joined on close (after their sockets are shut), so none outlives a test.
    daemon_threads = False
    block_on_close = True

    def __init__(self, address: tuple[str, int], state: StubState) -> None:
        super().__init__(address, _Handler)
        self.app = StubApp(state)
        self._conn_lock = threading.Lock()
        self._conns: set[socket.socket] = set()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._conn_lock:
            self._conns.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._conn_lock:
            self._conns.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that timed out and hung up is routine here, not worth a traceback on stderr.
        log.debug("stub-anthropic: connection from %s ended badly", client_address, exc_info=True)

    def drop_connections(self) -> None:
        """Unblock handlers waiting on idle keep-alive connections so they can be joined."""
        with self._conn_lock:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class StubServer:
    """What every stub server offers: ``start`` and ``stop`` (a context manager does both), and
    ``script``, ``stats`` and ``reset``, which act on the running server directly (the
    ``/_stub/*`` endpoints do the same for a stub in another process). ``base_url`` is what to
    hand the SDK (or ``AGENTYARD_ANTHROPIC_BASE_URL``)."""

    state: StubState
    port: int
    base_url: str

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def script(self, responses: list[dict[str, Any]]) -> None:
        self.state.script(responses)

    def stats(self) -> dict[str, Any]:
        return self.state.stats()

    def reset(self) -> None:
        self.state.reset()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class StubAnthropicServer(StubServer):
    """The stub on a free 127.0.0.1 port, a thread per connection, served from a background
    thread."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        latency_s: float = 0.0,
        min_cache_tokens: int = MIN_CACHE_TOKENS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.state = StubState(latency_s, min_cache_tokens, clock)
        self._httpd = _StubHTTPServer((host, port), self.state)
        self.host = host
        self.port: int = self._httpd.server_address[1]
        self.base_url = f"http://{self.host}:{self.port}"
        self._thread: threading.Thread | None = None

    def start(self) -> Self:
        self._thread = threading.Thread(
            target=self.serve_forever, name=f"stub-anthropic-{self.port}", daemon=True
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in the calling thread until ``stop`` is called from another one (or Ctrl-C)."""
        self._httpd.serve_forever(poll_interval=0.05)

    def stop(self) -> None:
        self.state.stopping.set()
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
            self._thread = None
        self._httpd.drop_connections()
        self._httpd.server_close()


def serve(
    host: str, port: int, latency_s: float = 0.0, min_cache_tokens: int = MIN_CACHE_TOKENS
) -> None:
    """Run the stub in the foreground until Ctrl-C (``agentyard stub-anthropic``)."""
    server = StubAnthropicServer(host, port, latency_s, min_cache_tokens)
    print(f"stub Anthropic API on {server.base_url} (Ctrl-C stops it)", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
