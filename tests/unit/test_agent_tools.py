"""An agent's tools, as its definition takes them: module-level functions another worker finds,
each once, described by what ``@tool`` declares."""

from __future__ import annotations

import pytest

from orchestration import Agent
from storage.errors import InvalidDefinition
from tests.tool_examples import refund, search_docs, whoami


def test_an_agent_keeps_its_tools_and_what_each_declares() -> None:
    agent = Agent(id="clerk", model="offline:echo", tools=[search_docs, refund])
    assert agent.tools == (search_docs, refund)
    assert [(s.name, s.side_effects, s.idempotent) for s in agent.tool_specs] == [
        ("search_docs", False, False),
        ("refund", True, True),
    ]
    assert agent.max_tool_turns == 10


def _local_tool() -> object:
    def local(order: int) -> str:
        """Look an order up."""
        return str(order)

    return local


@pytest.mark.parametrize(
    ("tools", "says"),
    [
        ([lambda order: order], "cannot be a lambda"),
        ([_local_tool()], "top level"),
        ([search_docs, search_docs], "two tools are named 'search_docs'"),
        ("search_docs", "must be a list of tools"),
        ([whoami], "cannot yet ask a person to approve a tool call"),
    ],
)
def test_tools_another_worker_could_not_find_or_tell_apart_are_refused(
    tools: object, says: str
) -> None:
    with pytest.raises(InvalidDefinition) as refused:
        Agent(id="clerk", model="offline:echo", tools=tools)
    assert says in str(refused.value)


def test_max_tool_turns_is_bounded() -> None:
    with pytest.raises(InvalidDefinition, match="max_tool_turns"):
        Agent(id="clerk", model="offline:echo", max_tool_turns=0)
