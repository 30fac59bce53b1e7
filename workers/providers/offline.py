"""The offline provider: deterministic answers, realistic usage, no network.

Model names look like ``offline:<profile>[?option=value&...]``:

- ``offline:echo`` answers at once; ``offline:slow`` takes about half a second.
- ``latency=0.2`` sets the latency in seconds.
- ``fail=rate_limited|overloaded|timeout|unavailable|rejected`` with ``fail_rate=0.3`` fails that
  share of calls, chosen by a hash of the request key (so the same attempt always fails or always
  succeeds, and a retry is a fresh draw); ``fail_first=2`` fails the first two attempts of every
  step instead.

It is a real code path (the demo and the tests run it through the same agent task), not a mock.
"""

from __future__ import annotations

import hashlib
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
from workers.providers.base import ModelRequest, ModelResponse, Usage

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
        unknown = set(options) - {"latency", "fail", "fail_rate", "fail_first"}
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
            return cls(
                profile=profile,
                latency_s=float(options.get("latency", _PROFILES[profile])),
                failure=failure,
                fail_rate=float(options.get("fail_rate", 1.0 if failure else 0.0)),
                fail_first=int(options.get("fail_first", 0)),
            )
        except ValueError as exc:
            raise ConfigurationError(f"bad number in offline model {model!r}: {exc}") from None


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


def _turns(request: ModelRequest) -> list[list[str]]:
    """Each turn's text, in the parts it was sent in: the preamble is the first part of the first
    user turn (a user turn of its own, first, when there is none)."""
    turns = [[m.content] for m in request.messages]
    if request.preamble:
        first_user = next((i for i, m in enumerate(request.messages) if m.role == "user"), None)
        if first_user is None:
            turns.insert(0, [request.preamble])
        else:
            content = request.messages[first_user].content
            turns[first_user] = [request.preamble, content] if content else [request.preamble]
    return turns


def _compose(request: ModelRequest, turns: list[list[str]]) -> str:
    """A short, deterministic answer shaped by the agent's role and the task, the last turn (read
    as it was before it was marked as data: the same task gets the same answer, whatever its
    marks)."""
    system = _SYSTEM_NOTE.sub("", request.system).strip()
    role = re.split(r"(?<=[.!?])\s", system, maxsplit=1)[0][:100] or "Assistant."
    task = "\n\n".join(_read_through_marks(part) for part in turns[-1]) if turns else ""
    topic_match = re.search(r"Request:\n(.+?)(?:\n\n|$)", task, re.S)
    topic = _fold(topic_match.group(1) if topic_match else task)[:120] or "the task"
    previous = re.search(r"Output of the previous step \(([\w-]+)\):\n(.*)", task, re.S)
    digest = hashlib.sha256(f"{system}\n{task}".encode()).hexdigest()[:8]
    lines = [role, f"Topic: {topic}"]
    if previous:
        words = len(previous.group(2).split())
        lines.append(f"- Builds on the {previous.group(1)}'s {words} words.")
    lines += [f"- Point {n} of 3 on {topic}." for n in (1, 2, 3)]
    lines.append(f"(offline answer {digest})")
    return "\n".join(lines)


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
        text = _compose(request, turns)
        limit = request.max_tokens * _CHARS_PER_TOKEN
        stop_reason = "end_turn"
        if len(text) > limit:
            text, stop_reason = text[:limit], "max_tokens"
        prompt_chars = len(request.system) + sum(len(part) for turn in turns for part in turn)
        usage = Usage(
            input_tokens=math.ceil(prompt_chars / _CHARS_PER_TOKEN)
            + _TOKENS_PER_MESSAGE * (len(turns) + 1),
            output_tokens=_tokens(text),
        )
        return ModelResponse(
            text=text,
            usage=usage,
            model=request.model,
            stop_reason=stop_reason,
            wire_s=model.latency_s,
        )

    @staticmethod
    def _fails(model: OfflineModel, request_key: str) -> bool:
        if model.fail_first:
            return _attempt_of(request_key) <= model.fail_first
        return _draw(f"{request_key}|{model.failure}") < model.fail_rate
