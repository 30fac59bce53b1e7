"""How a step's input is made to fit its agent's ``context_tokens``.

The input of a call is its agent's system prompt, its earlier exchanges in the run, and the
step's prompt: the request, the earlier steps, what it is given. ``max_tokens`` (the answer) is
not part of it. When the whole does not fit, what goes first is the oldest exchanges, one at a
time; then the earlier steps' full text, oldest first, in favour of their summaries (the
summarizer agent's, or their first sentences). If the input does not fit even with no exchange
and every earlier step summarized, ``ContextTooLarge`` says so before any call is made.

Counting: ``LocalEstimate`` never counts low (a token is at least one byte of UTF-8, plus a few
for each message), so what it lets through fits; ``ProviderCount`` (``AGENTYARD_COUNT_TOKENS=api``)
asks the provider's own count only when the estimate says the input does not fit, and keeps the
answers by content hash. Pure apart from that: the interpreter composes, this module chooses.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

import structlog

from orchestration.budget import input_tokens_bound
from storage.errors import AgentyardError, ContextTooLarge
from storage.settings import Settings
from workers.providers.base import ModelRequest, block_json, tool_json
from workers.providers.registry import Providers, is_offline

log = structlog.get_logger(__name__)


class TokenCounter(Protocol):
    def count(self, request: ModelRequest, limit: int) -> int:
        """The input tokens of ``request``, never fewer than it has; a count over ``limit`` may
        be a bound rather than the exact figure (the request does not fit either way)."""
        ...


class LocalEstimate:
    """A count that errs on the safe side: the bytes of the text, and a few per message."""

    def count(self, request: ModelRequest, limit: int) -> int:
        return input_tokens_bound(request)


class ProviderCount:
    """The provider's own count of a request (Anthropic's ``count_tokens`` endpoint), asked only
    when the local estimate is over the limit, and remembered by the request's content hash (the
    last ``size`` of them). ``ask`` is None for a model the provider cannot count (the offline
    ones): the estimate stands."""

    def __init__(self, ask: Callable[[ModelRequest], int | None], size: int = 4096) -> None:
        self._ask = ask
        self._size = size
        self._known: OrderedDict[str, int] = OrderedDict()
        self._lock = threading.Lock()
        self.asked = 0  # how many times the provider was asked (for tests and metrics)

    def count(self, request: ModelRequest, limit: int) -> int:
        estimate = input_tokens_bound(request)
        if estimate <= limit:
            return estimate
        key = content_hash(request)
        with self._lock:
            if key in self._known:
                self._known.move_to_end(key)
                return self._known[key]
        counted = self._ask(request)
        if counted is None:
            return estimate
        with self._lock:
            self.asked += 1
            self._known[key] = counted
            while len(self._known) > self._size:
                self._known.popitem(last=False)
        return counted


def content_hash(request: ModelRequest) -> str:
    """What a count depends on: the model and every piece of text, in order (every block of a
    turn, a tool call's input included), and the tools offered."""
    parts: list[object] = [
        request.model,
        request.system,
        request.preamble,
        [
            [
                m.role,
                m.content if isinstance(m.content, str) else [block_json(b) for b in m.content],
            ]
            for m in request.messages
        ],
    ]
    if request.tools:  # a request without tools hashes as it always did
        parts.append([tool_json(t) for t in request.tools])
    body = json.dumps(parts, separators=(",", ":"), sort_keys=True)
    return hashlib.sha256(body.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Layout:
    """One way to lay a step's input out: how many of its oldest exchanges are left out, and
    how many of its oldest earlier steps are given by their summary rather than in full."""

    dropped: int = 0
    summarized: int = 0


def layouts(exchanges: int, earlier: int, summarized: int = 0) -> Iterator[Layout]:
    """The layouts to try, most complete first: every exchange, and every earlier step in full
    but the first ``summarized``; then the oldest exchanges left out, one by one; then more of
    the earlier steps summarized, oldest first, one by one."""
    for dropped in range(exchanges + 1):
        yield Layout(dropped, summarized)
    for more in range(summarized + 1, earlier + 1):
        yield Layout(exchanges, more)


@dataclass(frozen=True, slots=True)
class Fitted:
    """The layout chosen, and the request it makes (counted at ``tokens``)."""

    layout: Layout
    request: ModelRequest
    tokens: int


def fit(
    agent_id: str,
    limit: int,
    candidates: Iterable[Layout],
    build: Callable[[Layout], ModelRequest],
    counter: TokenCounter,
) -> Fitted:
    """The first of the ``candidates`` (``layouts``, most complete first, each no larger than
    the one before) whose request (``build``) fits ``limit`` tokens, as ``counter`` counts them;
    ``ContextTooLarge`` if none does. Found by bisection: a few counts, however many layouts."""
    tried = list(candidates)
    assert tried, "no layout to try"

    def counted(index: int) -> Fitted:
        request = build(tried[index])
        return Fitted(tried[index], request, counter.count(request, limit))

    smallest = counted(len(tried) - 1)
    if smallest.tokens > limit:
        raise ContextTooLarge(
            f"{ContextTooLarge.__name__}: the input of a call to agent {agent_id!r} needs "
            f"{smallest.tokens} tokens with no earlier exchange and every earlier step "
            f"summarized, more than its context_tokens={limit}: raise the agent's "
            "context_tokens, give it a shorter system prompt, or pass it less text (the "
            "request, or what the step before it writes)"
        )
    low, high, best = 0, len(tried) - 1, smallest  # tried[high] fits
    while low < high:
        middle = (low + high) // 2
        found = counted(middle)
        if found.tokens <= limit:
            high, best = middle, found
        else:
            low = middle + 1
    return best


def counter_for(settings: Settings) -> TokenCounter:
    """The counter ``AGENTYARD_COUNT_TOKENS`` asks for: the local estimate, or the provider's
    count (Anthropic's models only; a count that fails leaves the estimate standing)."""
    if settings.count_tokens != "api":
        return LocalEstimate()
    providers = Providers(settings)

    def ask(request: ModelRequest) -> int | None:
        if is_offline(request.model):
            return None
        provider = providers.for_model(request.model)
        try:
            return int(provider.count_tokens(request))  # type: ignore[attr-defined]
        except AgentyardError as error:
            log.warning("context.count_failed", model=request.model, error=str(error))
            return None

    return ProviderCount(ask)
