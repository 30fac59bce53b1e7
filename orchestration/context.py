"""What an agent sees when it is called: its recent history and a summary of the workflow so far.

Pure: the step runner loads the rows, this module shapes them into a ``ModelRequest``.
The summary of earlier steps is extractive (their first sentences); summarizing with a model is
a later addition.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from orchestration.definitions import Agent
from workers.providers.base import ChatMessage, ModelRequest

HISTORY_EXCHANGES = 5
SUMMARY_CHARS_PER_STEP = 300


@dataclass(frozen=True, slots=True)
class Exchange:
    """One earlier call of the same agent in the same workflow run."""

    prompt: str
    answer: str


@dataclass(frozen=True, slots=True)
class EarlierStep:
    position: int
    agent_id: str
    output: str


def extract(text: str, limit: int = SUMMARY_CHARS_PER_STEP) -> str:
    """The first sentences of ``text`` that fit in ``limit`` characters, whitespace folded."""
    flat = re.sub(r"\s+", " ", text).strip()
    if len(flat) <= limit:
        return flat
    sentences = re.split(r"(?<=[.!?])\s", flat)
    kept = ""
    for sentence in sentences:
        if len(kept) + len(sentence) + 1 > limit:
            break
        kept = f"{kept} {sentence}".strip()
    return kept or flat[: limit - 1] + "…"


def compose_prompt(
    workflow_input: str, step_input: str, position: int, earlier: list[EarlierStep]
) -> str:
    """The user message of a step: the request, what came before, and this step's input."""
    if position == 0:
        return step_input
    parts = [f"Request:\n{workflow_input}"]
    previous = earlier[-1] if earlier else None
    older = earlier[:-1]
    if older:
        lines = "\n".join(
            f"- step {s.position + 1} ({s.agent_id}): {extract(s.output)}" for s in older
        )
        parts.append(f"Earlier steps (summary):\n{lines}")
    if previous is not None:
        parts.append(f"Output of the previous step ({previous.agent_id}):\n{step_input}")
    else:
        parts.append(f"Input:\n{step_input}")
    return "\n\n".join(parts)


def build_messages(history: list[Exchange], prompt: str) -> tuple[ChatMessage, ...]:
    """Alternating user/assistant turns: the last exchanges, then this step's prompt."""
    messages: list[ChatMessage] = []
    for exchange in history[-HISTORY_EXCHANGES:]:
        messages.append(ChatMessage(role="user", content=exchange.prompt))
        messages.append(ChatMessage(role="assistant", content=exchange.answer))
    messages.append(ChatMessage(role="user", content=prompt))
    return tuple(messages)


def model_request(
    agent: Agent, prompt: str | None, history: list[list[str]] | None, request_key: str
) -> ModelRequest:
    """What ``agent`` is asked for a step: its system prompt, its earlier exchanges in the run and
    the step's prompt (both composed by the coordinator when it dispatched the step)."""
    return ModelRequest(
        model=agent.model,
        system=agent.system_prompt,
        messages=build_messages(
            [Exchange(question, answer) for question, answer in history or []], prompt or ""
        ),
        max_tokens=agent.max_tokens,
        timeout_s=agent.timeout_s,
        request_key=request_key,
    )
