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
    assert agent.tool_specs is agent.tool_specs  # derived once: the sweep and each turn ask


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
    ],
)
def test_tools_another_worker_could_not_find_or_tell_apart_are_refused(
    tools: object, says: str
) -> None:
    with pytest.raises(InvalidDefinition) as refused:
        Agent(id="clerk", model="offline:echo", tools=tools)
    assert says in str(refused.value)


def test_an_agent_may_have_a_tool_whose_calls_wait_for_approval() -> None:
    agent = Agent(id="clerk", model="offline:echo", tools=[whoami])
    assert [spec.needs_approval for spec in agent.tool_specs] == [True]


def test_a_workflow_says_how_its_tool_calls_wait_for_approval() -> None:
    from orchestration import Workflow

    default = Workflow("w", ["clerk"]).graph.tool_approvals
    assert (default.untrusted_side_effects, default.timeout_s, default.on_timeout) == (
        False,
        86_400.0,
        "reject",
    )
    strict = Workflow(
        "w",
        ["clerk"],
        approve_untrusted_side_effects=True,
        tool_approval_timeout_s=60,
        tool_approval_on_timeout="fail",
    ).graph
    assert strict.tool_approvals.to_json() == {
        "untrusted_side_effects": True,
        "timeout_s": 60.0,
        "on_timeout": "fail",
    }
    assert type(strict).from_json(strict.to_json()).tool_approvals == strict.tool_approvals
    with pytest.raises(InvalidDefinition, match="tool_approval_on_timeout"):
        Workflow("w", ["clerk"], tool_approval_on_timeout="maybe")


def test_max_tool_turns_is_bounded() -> None:
    with pytest.raises(InvalidDefinition, match="max_tool_turns"):
        Agent(id="clerk", model="offline:echo", max_tool_turns=0)
