"""What an agent sees when it is called: its recent history and a summary of the workflow so far.

Pure: the coordinator composes a step's prompt when it makes the step (fitted to its agent's
``context_tokens`` by ``context_budget``), the step runner shapes the stored prompt into a
``ModelRequest``. An earlier step is shown in full, or by its first sentences (``extract``), or
left to the run's summary, which opens the prompt as its preamble.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from orchestration.definitions import Agent
from orchestration.guards.provenance import WORKFLOW_INPUT
from orchestration.guards.spotlight import SYSTEM_NOTE, Spotlight, is_marked
from orchestration.workflow.checks import schema_instructions
from workers.providers.base import ChatMessage, ModelRequest

HISTORY_EXCHANGES = 5
Shown = Literal["extract", "full", "summary"]
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
    # how a prompt shows it: its first sentences, its full text, or not at all (the run's
    # summary, before the prompt, covers it)
    shown: Shown = "extract"

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
        summarized = [s.title for s in older if s.shown == "summary"]
        listed = [s for s in older if s.shown != "summary"]
        if summarized:
            parts.append(f"Earlier steps, in the summary above: {', '.join(summarized)}.")
        if listed and all(s.shown == "extract" for s in older):
            lines = "\n".join(
                f"- {s.title}: {data(extract(s.output), s.source or s.title)}" for s in listed
            )
            parts.append(f"Earlier steps (summary):\n{lines}")
        elif listed:
            lines = "\n".join(
                f"- {s.title}:\n{data(s.output, s.source or s.title)}"
                if s.shown == "full"
                else f"- {s.title}, in short: {data(extract(s.output), s.source or s.title)}"
                for s in listed
            )
            parts.append(f"Earlier steps:\n{lines}")
        parts.append(f"{label}:\n{data(given, given_source)}")
    if spotlight is not None:
        parts.insert(0, spotlight.note)
    return "\n\n".join(parts)


SUMMARY_TASK = (
    "Write a summary of the earlier steps of this run below, for the agents that carry it on: "
    "the key decisions and facts, what was found and what is still open. Keep names, figures "
    "and sources exact; leave out what will not matter later. Answer with the summary alone."
)


def summary_prompt(
    workflow_input: str,
    earlier: list[EarlierStep],
    spotlight: Spotlight,
    previous: str | None = None,
    previous_source: str = "",
) -> str:
    """The prompt of a summarizer's step: the task, the request, the summary so far (if there
    is one: the new summary takes it on), and the full text of the ``earlier`` steps it adds,
    every piece from outside marked as data."""
    parts = [spotlight.note, SUMMARY_TASK]
    parts.append(f"Request:\n{spotlight.data(workflow_input, WORKFLOW_INPUT)}")
    if previous is not None:
        parts.append(f"The summary so far:\n{spotlight.data(previous, previous_source)}")
    lines = "\n".join(
        f"- {s.title}:\n{spotlight.data(s.output, s.source or s.title)}" for s in earlier
    )
    parts.append(f"Earlier steps to summarize:\n{lines}")
    return "\n\n".join(parts)


def preamble(summary: str, summary_id: str, summarizer: str, covered: list[str]) -> str:
    """The run's summary as a prompt opens with it, before the agent's exchanges: marked as
    data with delimiters of its own (the same for every step that reads this summary, so that
    it stays a cacheable prefix)."""
    spotlight = Spotlight.kept(summary_id)
    source = f"summary by {summarizer} of {', '.join(covered)}"
    return f"{spotlight.note}\n\nSummary of the earlier steps:\n{spotlight.data(summary, source)}"


def build_messages(history: list[Exchange], prompt: str) -> tuple[ChatMessage, ...]:
    """Alternating user/assistant turns: the last exchanges, then this step's prompt."""
    messages: list[ChatMessage] = []
    for exchange in history[-HISTORY_EXCHANGES:]:
        messages.append(ChatMessage(role="user", content=exchange.prompt))
        messages.append(ChatMessage(role="assistant", content=exchange.answer))
    messages.append(ChatMessage(role="user", content=prompt))
    return tuple(messages)


def model_request(
    agent: Agent,
    prompt: str | None,
    history: list[list[str]] | None,
    request_key: str,
    preamble: str | None = None,
) -> ModelRequest:
    """What ``agent`` is asked for a step: its system prompt, the run's summary (``preamble``, if
    the step needed one), its earlier exchanges in the run and the step's prompt (composed by
    the coordinator when it made the step). With the agent's ``prompt_cache``, the system prompt
    and the summary are marked for the provider's cache: they are the same for every iteration
    of a loop and every branch of a fan-out."""
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
        preamble=preamble or "",
        cache=agent.prompt_cache,
    )
