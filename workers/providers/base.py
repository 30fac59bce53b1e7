"""What every model provider takes and gives back.

A provider turns one ``ModelRequest`` into one ``ModelResponse`` or raises a ``ProviderError``
(``storage.errors``) saying whether another attempt may help. Providers never retry: agentyard's
retry policy sees every attempt (one retry layer).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit

# An HTTP provider names the attempt ("<step id>:<attempt>") in this header on every request, so
# that a gateway's logs, or the stub server's counts, tell a retry from a duplicate. Ids only.
REQUEST_KEY_HEADER = "X-Agentyard-Request"


@dataclass(frozen=True, slots=True)
class TextBlock:
    text: str


@dataclass(frozen=True, slots=True)
class ToolUse:
    """The model asks for a tool: ``id`` (the API's, e.g. ``toolu_...``) is what the
    ``ToolResult`` answering it names."""

    id: str
    name: str
    input: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ToolResult:
    """A tool's answer to the ``ToolUse`` named ``tool_use_id``; ``is_error`` tells the model
    the call failed (bad arguments, the tool raised) and ``content`` says why."""

    tool_use_id: str
    content: str
    is_error: bool = False


@dataclass(frozen=True, slots=True)
class Thinking:
    """The model's visible reasoning; ``signature`` is opaque and goes back unchanged."""

    thinking: str
    signature: str


# One piece of a turn's content, in the order the model reads or wrote it.
Block = TextBlock | ToolUse | ToolResult | Thinking


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """One turn. Its content is plain text (the common case), or content blocks: a user turn
    carrying tool results, an assistant turn carrying the tool calls it made."""

    role: Literal["user", "assistant"]
    content: str | tuple[Block, ...]


@dataclass(frozen=True, slots=True)
class ToolSchema:
    """A tool the model may call: ``input_schema`` is the JSON Schema of its arguments."""

    name: str
    description: str
    input_schema: dict[str, Any]


def text_of(content: str | tuple[Block, ...] | ChatMessage) -> str:
    """The text of a turn (or of its content): a string as it is, else its text blocks joined
    (tool calls, tool results and thinking are not text)."""
    if isinstance(content, ChatMessage):
        content = content.content
    if isinstance(content, str):
        return content
    return "".join(b.text for b in content if isinstance(b, TextBlock))


def block_text(block: Block) -> str:
    """Everything ``block`` puts before a model, as one string, for counting and hashing: a text,
    a tool call's id, name and input as JSON, a tool result's id and content, a thinking block's
    text and signature."""
    if isinstance(block, TextBlock):
        return block.text
    if isinstance(block, ToolUse):
        arguments = json.dumps(block.input, sort_keys=True, ensure_ascii=False)
        return f"{block.id}{block.name}{arguments}"
    if isinstance(block, ToolResult):
        return f"{block.tool_use_id}{block.content}"
    return f"{block.thinking}{block.signature}"


def block_json(block: Block) -> dict[str, Any]:
    """``block`` as plain JSON data, shaped as the Messages API shapes it."""
    if isinstance(block, TextBlock):
        return {"type": "text", "text": block.text}
    if isinstance(block, ToolUse):
        return {"type": "tool_use", "id": block.id, "name": block.name, "input": block.input}
    if isinstance(block, ToolResult):
        return {
            "type": "tool_result",
            "tool_use_id": block.tool_use_id,
            "content": block.content,
            "is_error": block.is_error,
        }
    return {"type": "thinking", "thinking": block.thinking, "signature": block.signature}


def block_from_json(data: Mapping[str, Any]) -> Block:
    """The block ``block_json`` made ``data`` of."""
    kind = data.get("type")
    if kind == "text":
        return TextBlock(str(data["text"]))
    if kind == "tool_use":
        return ToolUse(str(data["id"]), str(data["name"]), dict(data["input"]))
    if kind == "tool_result":
        return ToolResult(
            str(data["tool_use_id"]), str(data["content"]), bool(data.get("is_error", False))
        )
    if kind == "thinking":
        return Thinking(str(data["thinking"]), str(data["signature"]))
    raise ValueError(f"not a content block agentyard keeps: {kind!r}")


def tool_json(tool: ToolSchema) -> dict[str, Any]:
    """``tool`` as plain JSON data, shaped as the Messages API takes it."""
    return {"name": tool.name, "description": tool.description, "input_schema": tool.input_schema}


@dataclass(frozen=True, slots=True)
class ModelRequest:
    model: str
    system: str
    messages: tuple[ChatMessage, ...]
    max_tokens: int
    timeout_s: float
    # "<step id>:<attempt>": lets a provider (or a test double) tell attempts apart.
    request_key: str = ""
    # Opens the first user turn as a content block of its own (the run's summary): with the
    # system prompt, the part of the input that stays the same from call to call.
    preamble: str = ""
    # Mark that stable prefix (the system prompt, then the preamble) with cache breakpoints.
    cache: bool = False
    # The tools the model may call; it answers with ``ToolUse`` blocks when it wants some.
    tools: tuple[ToolSchema, ...] = ()


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens by kind, exactly as billed. Cache tokens are not part of ``input_tokens``;
    ``cache_creation_1h_input_tokens`` is the part of the cache writes made with the 1-hour TTL
    (the rest used the 5-minute one)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_creation_1h_input_tokens: int = 0

    @property
    def total(self) -> int:
        """Every token billed (the 1-hour cache writes are part of the cache writes)."""
        return (
            self.input_tokens
            + self.output_tokens
            + self.cache_creation_input_tokens
            + self.cache_read_input_tokens
        )


@dataclass(frozen=True, slots=True)
class ModelResponse:
    text: str
    usage: Usage
    model: str
    stop_reason: str | None = None
    reasoning: str | None = field(default=None, repr=False)
    # From the request sent to the answer read: at most the provider's time (None: not measured).
    wire_s: float | None = None
    # Every block of the answer, in order (``text`` is its text blocks joined); with
    # ``stop_reason == "tool_use"`` the model waits for the results of its ``tool_uses``.
    content: tuple[Block, ...] = field(default=(), repr=False)

    @property
    def tool_uses(self) -> tuple[ToolUse, ...]:
        """The tools the model asked for, in order."""
        return tuple(b for b in self.content if isinstance(b, ToolUse))


class ModelProvider(Protocol):
    def complete(self, request: ModelRequest) -> ModelResponse:
        """Make one call. Raises ``ProviderError`` subclasses on failure; never retries."""
        ...


def is_real_anthropic_api(base_url: str) -> bool:
    """Whether ``base_url`` is Anthropic's own API (which needs a key), not a stub or a proxy."""
    host = urlsplit(base_url).hostname or ""
    return host == "anthropic.com" or host.endswith(".anthropic.com")


def lacks_anthropic_credentials(api_key: str | None, base_url: str | None) -> bool:
    """Whether Claude models cannot be called: no API key, and no base URL other than the real
    API's (agentyard's stub server, or a proxy that adds credentials, needs none)."""
    base_url = (base_url or "").rstrip("/")
    return not api_key and (not base_url or is_real_anthropic_api(base_url))
