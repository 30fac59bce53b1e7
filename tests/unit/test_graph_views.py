"""What a run of a workflow graph looks like: ``agentyard status``, ``trace`` and ``graph`` show
its iterations, branches and routes and why each loop stopped; the Mermaid graph draws the
loop's back edge and the fan-out's branches."""

from __future__ import annotations

import json
import re

import pytest

from orchestration import cli
from orchestration.results import WorkflowResult
from tests.conftest import TeamFactory
from tests.support import commands_read, run_inline
from tests.unit.test_graph_workflows_inline import _article


@pytest.fixture
def article(inline_team: TeamFactory, monkeypatch: pytest.MonkeyPatch) -> WorkflowResult:
    orc, bus = _article(inline_team)
    commands_read(monkeypatch, orc)
    return run_inline(orc, bus, "article", "the telegraph")


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert cli.main(list(args)) == 0
    return capsys.readouterr().out


def test_status_lists_each_steps_place_and_what_each_loop_fan_out_and_route_came_to(
    article: WorkflowResult, capsys: pytest.CaptureFixture[str]
) -> None:
    out = _run(capsys, "status", article.id)

    lines = out.splitlines()
    assert any(
        re.search(r"step 9 editor .*  loop1/editor \(loop1 iteration 1\)$", ln) for ln in lines
    )
    assert any(
        re.search(r"summarizer .*  fan_out1/summarizer \(fan_out1 branch 6\)$", ln) for ln in lines
    )
    nodes = lines[lines.index("loops, fan-outs, parallels and routes:") + 1 :]
    assert nodes[0] == "  fan_out1 (fan_out) succeeded: 6 branch(es): 6 succeeded"
    assert re.match(
        r"  loop1 \(loop\) succeeded: 2 iteration\(s\), stopped by converged "
        r"\(similarity 0\.\d\d\)$",
        nodes[1],
    )
    assert nodes[2] == "  parallel1 (parallel) succeeded: 2 branch(es): 2 succeeded"
    assert nodes[3] == "  route1 (route) succeeded: branch 'long'"


def test_the_trace_nests_steps_under_their_iterations_and_branches(
    article: WorkflowResult, capsys: pytest.CaptureFixture[str]
) -> None:
    out = _run(capsys, "trace", article.id)

    tree = [line.lstrip("│├└─ ") for line in out.splitlines()]
    loop = tree.index(next(line for line in tree if line.startswith("loop1  loop  succeeded")))
    assert "stopped by converged" in tree[loop]
    assert tree[loop + 1] == "iteration 1  succeeded"
    assert tree[loop + 2].startswith("step 9  editor  succeeded")
    assert "iteration 2  succeeded" in tree[loop:]
    assert "fan_out1  fan_out  succeeded  6 branch(es): 6 succeeded" in tree
    assert "branch 'long'  succeeded" in tree
    assert sum(line.startswith("branch ") for line in tree) == 6 + 2 + 1


def test_the_mermaid_graph_draws_the_loops_back_edge_and_the_fan_outs_branches(
    article: WorkflowResult, capsys: pytest.CaptureFixture[str]
) -> None:
    out = _run(capsys, "graph", article.id)

    edges = re.findall(r"^ {4}(\w+) (-->|==>)\|(\w+)\| (\w+)$", out, re.M)
    assert ("s10a1", "==>", "loop", "s11a1") in edges  # iteration 1's verdict to iteration 2
    fanned = [(a, b) for a, _, kind, b in edges if kind == "input" and a == "s1a1"]
    assert fanned == [("s1a1", f"s{n}a1") for n in range(2, 8)]  # one edge per branch
    joined = [a for a, _, kind, b in edges if kind == "join" and b == "s8a1"]
    assert joined == [f"s{n}a1" for n in range(2, 8)]  # every branch into the writer, once
    assert ("s11a1", "-->", "input", "s13a1") in edges  # the last draft flows on
    lines = out.splitlines()
    assert sum(ln.lstrip().startswith("subgraph ") for ln in lines) == sum(
        ln.strip() == "end" for ln in lines
    )  # every box is closed
    assert (
        'subgraph n2["loop1 #40;loop#41; succeeded: 2 iteration#40;s#41;, stopped by converged'
        in out
    )


def test_the_json_graph_says_each_nodes_place_and_each_node_run(
    article: WorkflowResult, capsys: pytest.CaptureFixture[str]
) -> None:
    graph = json.loads(_run(capsys, "graph", article.id, "--format", "json"))

    editor = next(n for n in graph["nodes"] if n["id"] == "s11a1")
    assert (editor["node"], editor["iteration"], editor["branch"], editor["scope"]) == (
        "loop1/editor",
        2,
        None,
        "loop1#2",
    )
    runs = {run["node"]: run for run in graph["node_runs"]}
    assert set(runs) == {"fan_out1", "loop1", "parallel1", "route1"}
    assert [f["title"] for f in runs["loop1"]["frames"]] == ["iteration 1", "iteration 2"]
    assert runs["route1"]["summary"] == "branch 'long'"
    assert {e["kind"] for e in graph["edges"]} == {"input", "join", "loop"}
