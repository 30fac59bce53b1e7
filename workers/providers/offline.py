"""The offline provider: deterministic answers, realistic usage, no network.

Model names look like ``offline:<profile>[?option=value&...]``:

- ``offline:echo`` answers at once; ``offline:slow`` takes about half a second.
- ``latency=0.2`` sets the latency in seconds.
- ``fail=rate_limited|overloaded|timeout|unavailable|rejected`` with ``fail_rate=0.3`` fails that
  share of calls, chosen by a hash of the request key (so the same attempt always fails or always
  succeeds, and a retry is a fresh draw); ``fail_first=2`` fails the first two attempts of every
  step instead.
- ``tool_turns=2``: when the request offers tools, how many turns of tool calls to make (1 by
  default) before the final answer. Each is one ``tool_use`` of one tool (the first whose name
  the task mentions, else the first offered) with the smallest arguments its input schema
  allows (required fields only; strings from the task's topic, numbers 1 or the bound nearest,
  booleans false, arrays of one, an enum's first value). The final answer quotes the tool
  results, so a test sees they reached the model. Without tools, nothing changes.

It is a real code path (the demo and the tests run it through the same agent task), not a mock.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
from dataclasses import dataclass
from urllib.parse import parse_qsl

from storage.errors import (
    ConfigurationError,
    Overloaded,
    ProviderError,
    ProviderRejected,
    ProviderTimeout,
    ProviderUnavailable,
    RateLimited,
)
from workers.providers.base import (
    Block,
    ModelRequest,
    ModelResponse,
    TextBlock,
    ToolResult,
    ToolSchema,
    ToolUse,
    Usage,
    block_text,
    text_of,
    tool_json,
)
from workers.providers.schema_instance import instance_of

PREFIX = "offline:"
_PROFILES = {"echo": 0.0, "slow": 0.5}
_FAILURES: dict[str, type[ProviderError]] = {
    "rate_limited": RateLimited,
    "overloaded": Overloaded,
    "timeout": ProviderTimeout,
    "unavailable": ProviderUnavailable,
    "rejected": ProviderRejected,
}
_CHARS_PER_TOKEN = 4
_TOKENS_PER_MESSAGE = 4  # role markers and separators, as real tokenizers add


@dataclass(frozen=True, slots=True)
class OfflineModel:
    profile: str
    latency_s: float
    failure: str | None = None
    fail_rate: float = 0.0
    fail_first: int = 0
    # Turns of tool calls before the final answer, when the request offers tools.
    tool_turns: int = 1

    @classmethod
    def parse(cls, model: str) -> OfflineModel:
        if not model.startswith(PREFIX):
            raise ConfigurationError(
                f"{model!r} is not an offline model (they start with {PREFIX!r})"
            )
        profile, _, query = model[len(PREFIX) :].partition("?")
        if profile not in _PROFILES:
            raise ConfigurationError(
                f"unknown offline profile {profile!r} in {model!r}; use one of {sorted(_PROFILES)}"
            )
        options = dict(parse_qsl(query, strict_parsing=bool(query)))
        unknown = set(options) - {"latency", "fail", "fail_rate", "fail_first", "tool_turns"}
        if unknown:
            raise ConfigurationError(
                f"unknown option(s) {sorted(unknown)} in offline model {model!r}"
            )
        failure = options.get("fail")
        if failure is not None and failure not in _FAILURES:
            raise ConfigurationError(
                f"unknown failure {failure!r} in {model!r}; use one of {sorted(_FAILURES)}"
            )
        try:
            parsed = cls(
                profile=profile,
                latency_s=float(options.get("latency", _PROFILES[profile])),
                failure=failure,
                fail_rate=float(options.get("fail_rate", 1.0 if failure else 0.0)),
                fail_first=int(options.get("fail_first", 0)),
                tool_turns=int(options.get("tool_turns", 1)),
            )
        except ValueError as exc:
            raise ConfigurationError(f"bad number in offline model {model!r}: {exc}") from None
        if parsed.tool_turns < 0:
            raise ConfigurationError(
                f"tool_turns must be 0 or more in offline model {model!r}, not {parsed.tool_turns}"
            )
        return parsed


def _tokens(text: str) -> int:
    return math.ceil(len(text) / _CHARS_PER_TOKEN)


def _draw(key: str) -> float:
    """A number in [0, 1) that depends only on ``key``."""
    digest = hashlib.sha256(key.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _attempt_of(request_key: str) -> int:
    _, _, attempt = request_key.rpartition(":")
    return int(attempt) if attempt.isdigit() else 1


def _fold(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


# A prompt whose outside text is marked as data (orchestration/guards/spotlight.py): the offline
# model reads through the marks, as a model reads the words inside them.
_DATA_NOTE = re.compile(r"\A\(Data here is marked [^\n]*\)\n\n")
_DATA_BLOCK = re.compile(r"«(data-[0-9a-f]+) from [^»\n]*»\n(.*?)\n«/\1»", re.S)
_SYSTEM_NOTE = re.compile(r"\n*Text between «data-…» marks comes from outside.*\Z", re.S)


def _read_through_marks(task: str) -> str:
    task = _DATA_NOTE.sub("", task)
    return _DATA_BLOCK.sub(lambda match: match.group(2).replace("\u02c6", " "), task)


def _parts(content: str | tuple[Block, ...]) -> list[str]:
    """A turn's content as the parts the model reads: a string is one, else one per block (a
    tool call's id, name and input as JSON, a tool result's id and content)."""
    if isinstance(content, str):
        return [content]
    return [block_text(b) for b in content]


def _turns(request: ModelRequest) -> list[list[str]]:
    """Each turn's text, in the parts it was sent in: the preamble is the first part of the first
    user turn (a user turn of its own, first, when there is none)."""
    turns = [_parts(m.content) for m in request.messages]
    if request.preamble:
        first_user = next((i for i, m in enumerate(request.messages) if m.role == "user"), None)
        if first_user is None:
            turns.insert(0, [request.preamble])
        else:
            content = request.messages[first_user].content
            rest = _parts(content) if content else []
            turns[first_user] = [request.preamble, *rest]
    return turns


def _task(parts: list[str]) -> str:
    """The task in a turn's parts, read as it was before it was marked as data."""
    return "\n\n".join(_read_through_marks(part) for part in parts)


def _topic(task: str) -> str:
    topic_match = re.search(r"Request:\n(.+?)(?:\n\n|$)", task, re.S)
    return _fold(topic_match.group(1) if topic_match else task)[:120] or "the task"


def _compose(request: ModelRequest, turns: list[list[str]]) -> str:
    """A short, deterministic answer shaped by the agent's role and the task, the last turn (read
    as it was before it was marked as data: the same task gets the same answer, whatever its
    marks)."""
    system = _SYSTEM_NOTE.sub("", request.system).strip()
    role = re.split(r"(?<=[.!?])\s", system, maxsplit=1)[0][:100] or "Assistant."
    task = _task(turns[-1]) if turns else ""
    topic = _topic(task)
    previous = re.search(r"Output of the previous step \(([\w-]+)\):\n(.*)", task, re.S)
    digest = hashlib.sha256(f"{system}\n{task}".encode()).hexdigest()[:8]
    lines = [role, f"Topic: {topic}"]
    if previous:
        words = len(previous.group(2).split())
        lines.append(f"- Builds on the {previous.group(1)}'s {words} words.")
    lines += [f"- Point {n} of 3 on {topic}." for n in (1, 2, 3)]
    lines.append(f"(offline answer {digest})")
    return "\n".join(lines)


def _task_parts(request: ModelRequest) -> list[str]:
    """The parts of the task: the last user turn with text of its own (the turns after it carry
    tool calls and results), its text blocks only, opened by the preamble if it is the first."""
    first_user = next((i for i, m in enumerate(request.messages) if m.role == "user"), None)
    for index in reversed(range(len(request.messages))):
        message = request.messages[index]
        if message.role != "user" or not text_of(message):
            continue
        content = message.content
        parts = [content] if isinstance(content, str) else _text_parts(content)
        return [request.preamble, *parts] if request.preamble and index == first_user else parts
    return [request.preamble] if request.preamble else []


def _text_parts(content: tuple[Block, ...]) -> list[str]:
    return [b.text for b in content if isinstance(b, TextBlock) and b.text]


def _tool_result_turns(request: ModelRequest) -> int:
    return sum(
        1
        for m in request.messages
        if m.role == "user"
        and not isinstance(m.content, str)
        and any(isinstance(b, ToolResult) for b in m.content)
    )


def _pick_tool(tools: tuple[ToolSchema, ...], task: str) -> ToolSchema:
    """The first tool the task names (as a word), else the first offered."""
    for tool in tools:
        if re.search(rf"(?<![\w-]){re.escape(tool.name)}(?![\w-])", task):
            return tool
    return tools[0]


def _results_line(request: ModelRequest) -> str:
    """What every tool result in the conversation said, in order, named by its tool."""
    names = {
        b.id: b.name
        for m in request.messages
        if not isinstance(m.content, str)
        for b in m.content
        if isinstance(b, ToolUse)
    }
    said = [
        f"{names.get(b.tool_use_id, b.tool_use_id)}{' (error)' if b.is_error else ''}: "
        f"{_fold(b.content)[:200]}"
        for m in request.messages
        if not isinstance(m.content, str)
        for b in m.content
        if isinstance(b, ToolResult)
    ]
    return "Tool results: " + ("; ".join(said) if said else "none")


def _cut(text: str, max_tokens: int) -> tuple[str, str]:
    """``text`` cut at ``max_tokens``, and the stop reason."""
    limit = max_tokens * _CHARS_PER_TOKEN
    return (text[:limit], "max_tokens") if len(text) > limit else (text, "end_turn")


def _input_tokens(request: ModelRequest, turns: list[list[str]]) -> int:
    """The prompt's characters at four a token (the tools' definitions as JSON among them), and
    a few tokens per turn."""
    chars = len(request.system) + sum(len(part) for turn in turns for part in turn)
    chars += sum(len(json.dumps(tool_json(t))) for t in request.tools)
    return math.ceil(chars / _CHARS_PER_TOKEN) + _TOKENS_PER_MESSAGE * (len(turns) + 1)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


class OfflineProvider:
    """Answers ``offline:*`` models without a network; see the module docstring."""

    def complete(self, request: ModelRequest) -> ModelResponse:
        model = OfflineModel.parse(request.model)
        if model.latency_s > 0:
            time.sleep(min(model.latency_s, request.timeout_s))
            if model.latency_s > request.timeout_s:
                raise ProviderTimeout(
                    f"offline model took {model.latency_s}s, over the {request.timeout_s}s timeout"
                )
        if model.failure and self._fails(model, request.request_key):
            raise _FAILURES[model.failure](
                f"injected {model.failure} from {request.model}",
                status={"rate_limited": 429, "overloaded": 529, "rejected": 400}.get(model.failure),
                retry_after_s=0.05 if model.failure == "rate_limited" else None,
            )
        turns = _turns(request)
        if request.tools:
            return self._with_tools(request, model, turns)
        text = _compose(request, turns)
        text, stop_reason = _cut(text, request.max_tokens)
        return ModelResponse(
            text=text,
            usage=Usage(input_tokens=_input_tokens(request, turns), output_tokens=_tokens(text)),
            model=request.model,
            stop_reason=stop_reason,
            wire_s=model.latency_s,
            content=(TextBlock(text),) if text else (),
        )

    @staticmethod
    def _with_tools(
        request: ModelRequest, model: OfflineModel, turns: list[list[str]]
    ) -> ModelResponse:
        """One tool call while fewer than ``tool_turns`` turns of tool results came back, then
        the answer, quoting them."""
        input_tokens = _input_tokens(request, turns)
        task = _task(_task_parts(request))
        if _tool_result_turns(request) < model.tool_turns:
            tool = _pick_tool(request.tools, task)
            arguments = instance_of(tool.input_schema, _topic(task))
            if not isinstance(arguments, dict):  # a schema that is not an object's: no arguments
                arguments = {}
            conversation = json.dumps(
                [request.system, [[m.role, _parts(m.content)] for m in request.messages]]
            )
            call = ToolUse(f"toolu_offline_{_digest(conversation)}", tool.name, arguments)
            written = _tokens(block_text(call))
            if written > request.max_tokens:  # the call was cut short: no usable tool_use
                return ModelResponse(
                    text="",
                    usage=Usage(input_tokens=input_tokens, output_tokens=request.max_tokens),
                    model=request.model,
                    stop_reason="max_tokens",
                    wire_s=model.latency_s,
                )
            return ModelResponse(
                text="",
                usage=Usage(input_tokens=input_tokens, output_tokens=written),
                model=request.model,
                stop_reason="tool_use",
                wire_s=model.latency_s,
                content=(call,),
            )
        lines = _compose(request, [_task_parts(request)]).split("\n")
        lines.insert(2, _results_line(request))  # after the role and the topic: cut last
        text, stop_reason = _cut("\n".join(lines), request.max_tokens)
        return ModelResponse(
            text=text,
            usage=Usage(input_tokens=input_tokens, output_tokens=_tokens(text)),
            model=request.model,
            stop_reason=stop_reason,
            wire_s=model.latency_s,
            content=(TextBlock(text),) if text else (),
        )

    @staticmethod
    def _fails(model: OfflineModel, request_key: str) -> bool:
        if model.fail_first:
            return _attempt_of(request_key) <= model.fail_first
        return _draw(f"{request_key}|{model.failure}") < model.fail_rate
