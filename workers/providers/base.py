"""What every model provider takes and gives back.

A provider turns one ``ModelRequest`` into one ``ModelResponse`` or raises a ``ProviderError``
(``storage.errors``) saying whether another attempt may help. Providers never retry: agentyard's
retry policy sees every attempt (one retry layer).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol
from urllib.parse import urlsplit

# An HTTP provider names the attempt ("<step id>:<attempt>") in this header on every request, so
# that a gateway's logs, or the stub server's counts, tell a retry from a duplicate. Ids only.
REQUEST_KEY_HEADER = "X-Agentyard-Request"


@dataclass(frozen=True, slots=True)
class ChatMessage:
    role: Literal["user", "assistant"]
    content: str


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
