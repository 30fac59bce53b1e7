"""The Anthropic Messages API as a ``ModelProvider``, through the official SDK.

One call, one HTTP request: the SDK runs with ``max_retries=0`` so agentyard's retry policy sees
every attempt (invariant 5). The agent's timeout is the provider's time on the wire
(``wire_deadline``): an answer that arrived is used, however long the worker took to read it.
SDK exceptions are translated here, at the boundary, into ``storage.errors`` classes that say
whether another attempt may help and whether the provider is to blame.
"""

from __future__ import annotations

import email.utils
import json
import math
import threading
import time
from collections.abc import Mapping
from types import TracebackType
from typing import TYPE_CHECKING

import anthropic
import httpx2

from storage.errors import (
    ConfigurationError,
    Overloaded,
    ProviderError,
    ProviderRejected,
    ProviderTimeout,
    ProviderUnavailable,
    RateLimited,
    WorkerBusy,
)
from workers.providers import wire_deadline
from workers.providers.base import (
    REQUEST_KEY_HEADER,
    Block,
    ChatMessage,
    ModelRequest,
    ModelResponse,
    TextBlock,
    Thinking,
    ToolResult,
    ToolUse,
    Usage,
    lacks_anthropic_credentials,
)

if TYPE_CHECKING:
    from anthropic import Omit
    from anthropic.types import (
        Message,
        MessageParam,
        TextBlockParam,
        ThinkingBlockParam,
        ToolParam,
        ToolResultBlockParam,
        ToolUseBlockParam,
    )

    # The content blocks agentyard sends, as the SDK types them.
    BlockParam = TextBlockParam | ToolUseBlockParam | ToolResultBlockParam | ThinkingBlockParam

    from storage.settings import Settings

REAL_API_URL = "https://api.anthropic.com"
# Sent when a non-Anthropic base URL (the stub, a credential-injecting proxy) needs no key: the
# SDK refuses to build a request without some credential header.
NO_KEY_PLACEHOLDER = "agentyard-no-key"
# Error codes of a 429 that is a spend limit: waiting seconds will not lift it.
SPEND_LIMIT_CODES = frozenset(
    {
        "enforced_spend_limit_reached",
        "contract_spend_limit_reached",
        "linked_organization_spend_limit_reached",
    }
)
# Older responses carry no error code; their message is all there is to tell them apart.
SPEND_LIMIT_PHRASES = ("usage limit", "spend limit", "spending limit")


class AnthropicProvider:
    """Makes one Messages API call per ``complete`` and reports what it cost.

    Credentials: an API key is required for the real API. Without one, a ``base_url`` that is not
    api.anthropic.com (agentyard's stub server, or a proxy that adds credentials) is accepted and
    a placeholder key is sent, since the stub accepts any key. With neither a key nor such a base
    URL the constructor raises ``ConfigurationError`` at once, at worker start rather than at the
    first call. The key and base URL are always passed to the SDK explicitly, so its own
    environment variables (``ANTHROPIC_API_KEY``, ``ANTHROPIC_BASE_URL``) never take effect.

    Safe to share between threads: SDK clients are cached per timeout behind a lock, and they
    share one HTTP connection pool, which is thread-safe. ``close`` releases it.
    """

    def __init__(self, api_key: str | None, base_url: str | None) -> None:
        if lacks_anthropic_credentials(api_key, base_url):
            raise ConfigurationError(
                "No Anthropic API key is configured: set AGENTYARD_ANTHROPIC_API_KEY, or point "
                "AGENTYARD_ANTHROPIC_BASE_URL at agentyard's stub server "
                "(`agentyard stub-anthropic`) to run without one."
            )
        base_url = (base_url or "").rstrip("/") or None
        api_key = api_key or NO_KEY_PLACEHOLDER
        self._api_key = api_key
        self._base_url = base_url or REAL_API_URL
        self._clients: dict[float, anthropic.Anthropic] = {}
        self._http: httpx2.Client | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> AnthropicProvider:
        key = settings.anthropic_api_key
        return cls(key.get_secret_value() if key else None, settings.anthropic_base_url)

    def __repr__(self) -> str:
        # Never the key: a provider may end up in a log line or a traceback's locals.
        return f"AnthropicProvider(base_url={self._base_url!r})"

    def complete(self, request: ModelRequest) -> ModelResponse:
        """Make one call. Raises ``ProviderError`` subclasses on failure; never retries."""
        system, messages = _prompt(request)
        client = self._client(request.timeout_s)
        try:
            with wire_deadline.wire_clock(request.timeout_s) as clock:
                message = client.messages.create(
                    model=request.model,
                    max_tokens=request.max_tokens,
                    system=system,
                    messages=messages,
                    tools=_tools(request),
                    extra_headers=_headers(request),
                )
        except anthropic.APIError as exc:
            # `from None`: the SDK's exception holds the request, and the request holds the key.
            raise self._translate(exc, request) from None
        return _response(message, clock.wire_s)

    def count_tokens(self, request: ModelRequest) -> int:
        """The input tokens ``request`` would be billed for in all (plain input, cache writes and
        cache reads together), as the API counts them; nothing is generated. The prompt is sent
        exactly as ``complete`` sends it. Raises ``ProviderError`` subclasses on failure, as
        ``complete`` does; never retries."""
        system, messages = _prompt(request)
        client = self._client(request.timeout_s)
        try:
            with wire_deadline.wire_clock(request.timeout_s):
                counted = client.messages.count_tokens(
                    model=request.model,
                    system=system,
                    messages=messages,
                    tools=_tools(request),
                    extra_headers=_headers(request),
                )
        except anthropic.APIError as exc:
            raise self._translate(exc, request) from None
        return counted.input_tokens

    def warm(self, timeouts: set[float]) -> None:
        """Build now what the first calls with these timeouts would build: the SDK's clients,
        its HTTP connection pool, and the SDK's request and response models (one call through
        the whole SDK to an in-process answer; nothing goes on the network)."""
        for timeout_s in sorted(timeouts):
            self._client(timeout_s)
        rehearse_sdk_call()

    def close(self) -> None:
        """Close the connection pool the cached clients share."""
        with self._lock:
            http, self._http, self._clients = self._http, None, {}
        if http is not None:
            http.close()

    def __enter__(self) -> AnthropicProvider:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _client(self, timeout_s: float) -> anthropic.Anthropic:
        with self._lock:
            client = self._clients.get(timeout_s)
            if client is None:
                if self._http is None:
                    self._http = wire_deadline.http_client(
                        self._base_url, timeout_s, anthropic.DEFAULT_CONNECTION_LIMITS
                    )
                client = anthropic.Anthropic(
                    api_key=self._api_key,
                    base_url=self._base_url,
                    max_retries=0,
                    timeout=timeout_s,
                    http_client=self._http,
                )
                self._clients[timeout_s] = client
            return client

    def _translate(self, exc: anthropic.APIError, request: ModelRequest) -> ProviderError:
        where = f"model {request.model}" + (
            f", {request.request_key}" if request.request_key else ""
        )
        if isinstance(exc, anthropic.APITimeoutError):
            if isinstance(exc.__cause__, httpx2.PoolTimeout):
                return WorkerBusy(
                    f"no free connection in this worker's pool within {request.timeout_s}s "
                    f"({where}); the request was not sent"
                )
            return ProviderTimeout(
                f"Anthropic API did not answer within {request.timeout_s}s of the request "
                f"being sent ({where})."
            )
        if isinstance(exc, anthropic.APIConnectionError):
            return ProviderUnavailable(
                f"Could not reach the Anthropic API at {self._base_url} ({where}): "
                f"{self._scrub(str(exc.__cause__ or exc))}"
            )
        if not isinstance(exc, anthropic.APIStatusError):
            return ProviderUnavailable(
                f"Anthropic API gave an unusable answer ({where}): {self._scrub(exc.message)}"
            )
        status = exc.status_code
        retry_after = retry_after_s(exc.response.headers)
        said = self._scrub(exc.api_message or exc.message)
        detail = f"{status} {exc.type or 'error'}: {said} ({where}, request {exc.request_id})"
        if status == 429 and _is_spend_limit(exc):
            return ProviderRejected(
                f"Anthropic spend limit reached, {detail}. Raise the limit in the Anthropic "
                "console or wait for it to reset; retrying will not help.",
                status=status,
            )
        if status == 429:
            return RateLimited(
                f"Anthropic rate limit, {detail}", status=status, retry_after_s=retry_after
            )
        if status == 529 or exc.type == "overloaded_error":
            return Overloaded(
                f"Anthropic API overloaded, {detail}", status=status, retry_after_s=retry_after
            )
        if status >= 500:
            return ProviderUnavailable(
                f"Anthropic API error, {detail}", status=status, retry_after_s=retry_after
            )
        hint = " Check AGENTYARD_ANTHROPIC_API_KEY." if status in (401, 403) else ""
        return ProviderRejected(
            f"Anthropic API refused the request, {detail}.{hint}", status=status
        )

    def _scrub(self, text: str) -> str:
        """``text`` without the API key, whatever a server chose to echo back."""
        return text.replace(self._api_key, "[redacted]") if self._api_key else text


def retry_after_s(headers: Mapping[str, str]) -> float | None:
    """The server's wait hint in seconds: ``retry-after-ms`` wins over ``retry-after``.

    ``retry-after`` may be seconds (integer or not) or an HTTP date, as the SDK itself accepts.
    """
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            seconds = float(value) / scale
        except ValueError:
            parsed = email.utils.parsedate_tz(value) if scale == 1.0 else None
            if parsed is None:
                continue
            seconds = email.utils.mktime_tz(parsed) - time.time()
        if math.isfinite(seconds):
            return max(0.0, seconds)
    return None


def _is_spend_limit(exc: anthropic.APIStatusError) -> bool:
    if exc.error_code in SPEND_LIMIT_CODES:
        return True
    message = (exc.api_message or "").lower()
    return any(phrase in message for phrase in SPEND_LIMIT_PHRASES)


def _prompt(request: ModelRequest) -> tuple[str | list[TextBlockParam] | Omit, list[MessageParam]]:
    """The system prompt and the messages as the API takes them, for every kind of call.

    With ``request.cache``, the system prompt is one text block ending the first cache
    breakpoint; the preamble, when there is one, is the first block of the first user turn and
    ends the second. An empty system prompt is left out rather than sent as an empty string.
    The tools, when there are any, come before both in the cached prefix (the API reads them
    first), so they need no breakpoint of their own.
    """
    system: str | list[TextBlockParam] | Omit = request.system or anthropic.omit
    if request.cache and request.system:
        system = [_text_block(request.system, cache=True)]
    if not request.preamble:
        return system, [_message_param(m) for m in request.messages]
    preamble = _text_block(request.preamble, cache=request.cache)
    first_user = next((i for i, m in enumerate(request.messages) if m.role == "user"), None)
    if first_user is None:  # no user turn to open: the preamble is one of its own, first
        return system, [
            {"role": "user", "content": [preamble]},
            *(_message_param(m) for m in request.messages),
        ]
    return system, [
        _message_param(m, preamble if i == first_user else None)
        for i, m in enumerate(request.messages)
    ]


def _text_block(text: str, *, cache: bool) -> TextBlockParam:
    if cache:
        return {"type": "text", "text": text, "cache_control": {"type": "ephemeral"}}
    return {"type": "text", "text": text}


def _message_param(message: ChatMessage, preamble: TextBlockParam | None = None) -> MessageParam:
    # Spelled out per role: the SDK's MessageParam is a union of TypedDicts told apart by role.
    content: str | list[BlockParam]
    if isinstance(message.content, str):
        content = message.content
    else:
        content = [_block_param(b) for b in message.content]
    if message.role == "user":
        if preamble is None:
            return {"role": "user", "content": content}
        if isinstance(content, str):
            # The API refuses an empty text block: a turn with no content of its own is the
            # preamble.
            content = [_text_block(content, cache=False)] if content else []
        # Tool results must open the turn that answers the tool calls: the preamble goes after.
        results = next((i for i, b in enumerate(content) if b["type"] != "tool_result"), None)
        at = len(content) if results is None else results
        return {"role": "user", "content": [*content[:at], preamble, *content[at:]]}
    return {"role": "assistant", "content": content}


def _block_param(block: Block) -> BlockParam:
    if isinstance(block, TextBlock):
        return _text_block(block.text, cache=False)
    if isinstance(block, ToolUse):
        return {"type": "tool_use", "id": block.id, "name": block.name, "input": block.input}
    if isinstance(block, ToolResult):
        result: ToolResultBlockParam = {
            "type": "tool_result",
            "tool_use_id": block.tool_use_id,
            "content": block.content,
        }
        if block.is_error:
            result["is_error"] = True
        return result
    return {"type": "thinking", "thinking": block.thinking, "signature": block.signature}


def _tools(request: ModelRequest) -> list[ToolParam] | Omit:
    """The tools offered, as the API takes them; left out when there are none."""
    if not request.tools:
        return anthropic.omit
    tools: list[ToolParam] = []
    for tool in request.tools:
        param: ToolParam = {"name": tool.name, "input_schema": tool.input_schema}
        if tool.description:
            param["description"] = tool.description
        tools.append(param)
    return tools


def _headers(request: ModelRequest) -> dict[str, str] | None:
    return {REQUEST_KEY_HEADER: request.request_key} if request.request_key else None


def rehearse_sdk_call() -> None:
    """One call through the SDK, answered in-process: the SDK builds its request and response
    models (pydantic's validators among them) once per process, and a cold worker's first calls
    would otherwise all pay for it at once."""
    from workers.stub_anthropic import build_message

    def answer(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(
            200, json=build_message(json.loads(request.content), {"thinking": "warm-up"})
        )

    with httpx2.Client(transport=httpx2.MockTransport(answer)) as http:
        client = anthropic.Anthropic(
            api_key=NO_KEY_PLACEHOLDER,
            base_url="http://warm-up.invalid",
            max_retries=0,
            http_client=http,
        )
        _response(
            client.messages.create(
                model="claude-haiku-4-5",
                max_tokens=16,
                system="warm-up",
                messages=[{"role": "user", "content": "warm-up"}],
                extra_headers={REQUEST_KEY_HEADER: "warm-up"},
            ),
            None,
        )


def _response(message: Message, wire_s: float | None) -> ModelResponse:
    """The answer as agentyard reads it: its text, tool calls and thinking blocks, in order.
    Other blocks (``redacted_thinking``, server tools' blocks) are left out: agentyard asks for
    neither extended thinking nor server tools, so they never come."""
    content: list[Block] = []
    for block in message.content:
        if block.type == "text":
            content.append(TextBlock(block.text))
        elif block.type == "tool_use":
            content.append(ToolUse(block.id, block.name, dict(block.input)))
        elif block.type == "thinking":
            content.append(Thinking(block.thinking, block.signature))
    texts = [b.text for b in content if isinstance(b, TextBlock)]
    thoughts = [b.thinking for b in content if isinstance(b, Thinking)]
    usage = message.usage
    by_ttl = usage.cache_creation  # the split of the cache writes by TTL, when the API gives it
    return ModelResponse(
        text="".join(texts),
        usage=Usage(
            input_tokens=usage.input_tokens or 0,
            output_tokens=usage.output_tokens or 0,
            cache_creation_input_tokens=usage.cache_creation_input_tokens or 0,
            cache_read_input_tokens=usage.cache_read_input_tokens or 0,
            cache_creation_1h_input_tokens=by_ttl.ephemeral_1h_input_tokens if by_ttl else 0,
        ),
        model=message.model,
        stop_reason=message.stop_reason,
        reasoning="".join(thoughts) if thoughts else None,
        wire_s=wire_s,
        content=tuple(content),
    )
