"""A workflow as a graph: the builders check what they are given, every node gets a stable name,
and the graph survives its JSON snapshot (a run in flight keeps its definition)."""

from __future__ import annotations

import json

import pytest

from orchestration.workflow.builders import fan_out, loop, parallel, route, step
from orchestration.workflow.functions import FunctionRef
from orchestration.workflow.graph import (
    FanOutNode,
    Graph,
    LoopNode,
    ParallelNode,
    RouteNode,
    StepNode,
    build_graph,
)
from storage.errors import InvalidDefinition, UnknownAgent
from tests.conftest import TeamFactory
from tests.workflow_functions import approved, classify, merge, same_length, sources


def _article() -> Graph:
    return build_graph(
        [
            step("researcher"),
            fan_out("summarizer", over=sources, max_parallel=8),
            "writer",
            loop(["editor", "critic"], max_iterations=5, until=approved, converge_at=0.92),
            parallel(["fact_checker", "style_checker"], join=merge),
            route(
                by=classify, branches={"short": ["publisher"], "long": ["splitter", "publisher"]}
            ),
        ],
        "article",
    )


def test_every_node_gets_a_stable_name_from_its_place_in_the_workflow() -> None:
    names = [node.name for node in _article().walk()]

    assert names == [
        "researcher",
        "fan_out1",
        "fan_out1/summarizer",
        "writer",
        "loop1",
        "loop1/editor",
        "loop1/critic",
        "parallel1",
        "parallel1/fact_checker",
        "parallel1/style_checker",
        "route1",
        "route1/short/publisher",
        "route1/long/splitter",
        "route1/long/publisher",
    ]


def test_an_agent_listed_twice_in_one_scope_is_named_apart() -> None:
    graph = build_graph(["writer", "critic", "writer"], "w")
    assert [node.name for node in graph.nodes] == ["writer", "critic", "writer-2"]
    assert graph.is_sequence


def test_composite_nodes_are_numbered_across_the_whole_workflow() -> None:
    graph = build_graph(
        [
            loop(["a", loop(["b"], max_iterations=2)], max_iterations=3),
            loop(["c"], max_iterations=2),
        ],
        "w",
    )
    assert [node.name for node in graph.walk()] == [
        "loop1",
        "loop1/a",
        "loop1/loop2",
        "loop1/loop2/b",
        "loop3",
        "loop3/c",
    ]


def test_the_graph_lists_every_agent_it_may_call_join_agents_included() -> None:
    graph = build_graph(["researcher", fan_out("summarizer", over=sources, join="writer")], "w")
    assert sorted(graph.agents()) == ["researcher", "summarizer", "writer"]


def test_an_agent_that_is_not_registered_is_refused_naming_it() -> None:
    with pytest.raises(UnknownAgent, match=r"workflow 'article' names agent\(s\) \['splitter'\]"):
        _article().check_agents(
            [
                "researcher",
                "summarizer",
                "writer",
                "editor",
                "critic",
                "fact_checker",
                "style_checker",
                "publisher",
            ],
            "article",
        )


def test_the_graph_comes_back_the_same_from_its_json_snapshot() -> None:
    graph = _article()
    snapshot = json.loads(json.dumps(graph.to_json()))  # as the run row keeps it

    again = Graph.from_json(snapshot)

    assert again == graph
    fan = again.node("fan_out1")
    assert isinstance(fan, FanOutNode) and fan.over.resolve() is sources
    assert isinstance(again.node("parallel1"), ParallelNode)
    assert isinstance(again.node("route1"), RouteNode)


def test_a_loops_settings_are_kept_as_given() -> None:
    node = loop(
        ["editor", "critic"], max_iterations=4, until=approved, converge_at=1, on_limit="best"
    )
    node2 = loop("editor", max_iterations=1, similarity=same_length)
    assert isinstance(node, LoopNode)
    assert (node.max_iterations, node.until, node.converge_at, node.on_limit) == (
        4,
        FunctionRef("tests.workflow_functions", "approved"),
        1.0,
        "best",
    )
    assert node2.body == (StepNode("editor"),) and node2.similarity is not None


def _inner(text: str) -> bool:
    return bool(text)


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (lambda: loop(["a"], max_iterations=5, until=lambda v: True), "is a lambda"),
        (
            lambda: loop(["a"], max_iterations=5, until=_closure()),
            "defined inside another",
        ),
        (lambda: loop(["a"], max_iterations=5, until=str.isupper), "must be a function defined"),
        (lambda: loop(["a"], max_iterations=5, until="approved"), "must be a function, got str"),
        (lambda: loop(["a"], max_iterations=0), "from 1 to 100, got 0"),
        (lambda: loop(["a"], max_iterations=101), "from 1 to 100, got 101"),
        (lambda: loop(["a"], max_iterations=2.5), "must be a whole number"),  # type: ignore[arg-type]
        (lambda: loop(["a"], max_iterations=3, converge_at=0), "over 0 and at most 1, got 0"),
        (lambda: loop(["a"], max_iterations=3, converge_at=1.5), "at most 1, got 1.5"),
        (lambda: loop(["a"], max_iterations=3, on_limit="stop"), "'fail', 'best'"),  # type: ignore[arg-type]
        (lambda: loop([], max_iterations=3), r"loop\(body\) is empty"),
        (lambda: fan_out("a", over=sources, max_parallel=0), "at least 1, or None, got 0"),
        (lambda: fan_out([], over=sources), r"fan_out\(node\) is empty"),
        (lambda: parallel([]), "at least one branch"),
        (lambda: parallel([["a"], []]), r"parallel\(branches\)\[1\] is empty"),
        (lambda: route(by=classify, branches={}), "mapping of labels"),
        (lambda: route(by=classify, branches={"a/b": ["x"]}), "without '/'"),
        (lambda: route(by=classify, branches={"a": ["x"]}, default="b"), "one of the labels"),
        (lambda: step(""), "takes an agent id"),
        (lambda: build_graph([], "w"), "workflow 'w' is empty"),
        (lambda: build_graph([42], "w"), "42 is not a node"),  # type: ignore[list-item]
    ],
)
def test_a_node_that_cannot_run_is_refused_when_it_is_written(make, says: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidDefinition, match=says):
        make()


def _closure():  # type: ignore[no-untyped-def]
    def until(verdict: str) -> bool:
        return True

    return until


def test_nesting_deeper_than_the_limit_is_refused_with_what_to_do() -> None:
    deep = loop(
        [fan_out(loop([loop(["a"], max_iterations=2)], max_iterations=2), over=sources)],
        max_iterations=2,
    )
    with pytest.raises(InvalidDefinition, match="4 deep; at most 3 are allowed"):
        build_graph([deep], "w")


def test_a_function_a_later_deploy_removed_is_said_when_a_run_needs_it() -> None:
    with pytest.raises(InvalidDefinition, match=r"tests\.workflow_functions:gone cannot be found"):
        FunctionRef("tests.workflow_functions", "gone").resolve()


def test_a_sequence_run_keeps_its_graph_and_each_step_names_its_node(
    inline_team: TeamFactory,
) -> None:
    from orchestration import Agent, Workflow
    from storage.db import session_scope
    from storage.models import WorkflowRow
    from tests.support import run_inline

    orc, bus = inline_team(
        Agent(id="writer", model="offline:echo"),
        Agent(id="critic", model="offline:echo"),
        workflows=(Workflow.sequence("w", ["writer", "critic", "writer"]),),
    )

    result = run_inline(orc, bus, "w", "the telegraph")

    assert [(s.node, s.iteration, s.branch) for s in result.steps] == [
        ("writer", None, None),
        ("critic", None, None),
        ("writer-2", None, None),
    ]
    with session_scope(orc.database_url) as session:
        row = session.get(WorkflowRow, result.id)
        assert row is not None and row.graph is not None
        assert Graph.from_json(row.graph) == orc.team.workflow("w").graph
