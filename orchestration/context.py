"""What an agent sees when it is called: its recent history and a summary of the workflow so far.

Pure: the step runner loads the rows, this module shapes them into a ``ModelRequest``.
The summary of earlier steps is extractive (their first sentences); summarizing with a model is
a later addition.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from orchestration.definitions import Agent
from orchestration.guards.provenance import WORKFLOW_INPUT
from orchestration.guards.spotlight import SYSTEM_NOTE, Spotlight, is_marked
from orchestration.workflow.checks import schema_instructions
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
    """A node that finished before the one being asked, as its summary line names it."""

    position: int
    agent_id: str
    output: str
    label: str | None = None  # how the summary names it; by default "step 2 (writer)"
    source: str = ""  # where its output came from, as a data block says it

    @property
    def title(self) -> str:
        return self.label or f"step {self.position + 1} ({self.agent_id})"


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
    """The user message of a step of a sequence: the request, what came before, and this step's
    input (the previous step's output)."""
    if position == 0:
        return step_input
    previous = earlier[-1] if earlier else None
    if previous is None:
        return compose(workflow_input, "Input", step_input, [])
    return compose(workflow_input, handed_on(previous.agent_id), step_input, earlier[:-1])


def handed_on(by: str) -> str:
    """What a prompt calls the output it is given of the node before it, ``by`` (its agent, or
    a composite node's name)."""
    return f"Output of the previous step ({by})"


def compose(
    workflow_input: str,
    label: str,
    given: str,
    older: list[EarlierStep],
    spotlight: Spotlight | None = None,
    given_source: str = WORKFLOW_INPUT,
) -> str:
    """The user message of a step: the request, a summary of the ``older`` nodes it follows, and
    what it is given (under ``label``, from ``given_source``) at the end. An empty label: the
    step is the run's first, and is given the request itself, alone. With a ``spotlight``, every
    piece from outside (all but the labels) is neutralized and marked as data."""

    def data(text: str, source: str) -> str:
        return text if spotlight is None else spotlight.data(text, source)

    if not label:
        parts = [data(given, given_source)]
    else:
        parts = [f"Request:\n{data(workflow_input, WORKFLOW_INPUT)}"]
        if older:
            lines = "\n".join(
                f"- {s.title}: {data(extract(s.output), s.source or s.title)}" for s in older
            )
            parts.append(f"Earlier steps (summary):\n{lines}")
        parts.append(f"{label}:\n{data(given, given_source)}")
    if spotlight is not None:
        parts.insert(0, spotlight.note)
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
    system = agent.system_prompt
    if agent.output_schema is not None:
        system = f"{system}\n\n{schema_instructions(agent.output_schema)}".strip()
    if prompt is not None and is_marked(prompt):  # a fixed line: the prefix stays cacheable
        system = f"{system}\n\n{SYSTEM_NOTE}".strip()
    return ModelRequest(
        model=agent.model,
        system=system,
        messages=build_messages(
            [Exchange(question, answer) for question, answer in history or []], prompt or ""
        ),
        max_tokens=agent.max_tokens,
        timeout_s=agent.timeout_s,
        request_key=request_key,
    )
