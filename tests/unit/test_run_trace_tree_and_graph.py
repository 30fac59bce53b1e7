"""A run's trace (the read model), `agentyard trace` (the tree) and `agentyard graph` (mermaid,
dot, JSON), on runs with real retries, fallbacks and failures driven in-process on SQLite."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sqlalchemy import update
from sqlmodel import col, select

from orchestration import Orchestrator, RunNotFound, WorkflowStatus, cli
from orchestration.graph_formats import dot_text, mermaid_text, to_dot, to_mermaid
from orchestration.maintenance import Maintenance
from orchestration.run_graph import build_graph
from orchestration.run_trace import Link, load_run_trace
from orchestration.trace_report import shorten
from storage.db import session_scope
from storage.models import StepRow, TraceRow, utcnow
from tests.conftest import TeamFactory
from tests.support import InlineBus, commands_read, drain
from tests.trace_support import run_to_the_end, trace_team_members


@dataclass
class Runs:
    orc: Orchestrator
    bus: InlineBus
    research: str  # succeeded: writer rate-limited twice, then its fallback editor
    doomed: str  # failed at step 2 (critic refused), step 3 never ran


@pytest.fixture
def runs(inline_team: TeamFactory, monkeypatch: pytest.MonkeyPatch) -> Runs:
    agents, workflows = trace_team_members()
    orc, bus = inline_team(*agents, workflows=workflows)
    research = run_to_the_end(orc, bus, "research", "the telegraph")
    doomed = run_to_the_end(orc, bus, "doomed", "the telephone")
    assert research.status is WorkflowStatus.SUCCEEDED
    assert doomed.status is WorkflowStatus.FAILED
    commands_read(monkeypatch, orc)
    monkeypatch.setattr("orchestration.loader.load_orchestrator", lambda _spec: orc)
    return Runs(orc, bus, research.id, doomed.id)


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli.main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# -- the read model ------------------------------------------------------------------------------


def test_a_runs_trace_has_every_attempt_with_its_retries_and_its_fallback(runs: Runs) -> None:
    trace = runs.orc.runs.trace(runs.research)

    researcher, writer, reviewer = trace.steps
    assert [(c.agent, c.attempt, c.outcome, c.link) for c in writer.calls] == [
        ("writer", 1, "rate_limited", Link.FIRST),
        ("writer", 2, "rate_limited", Link.RETRY),
        ("editor", 3, "succeeded", Link.FALLBACK),
    ]
    assert writer.retries == 1 and writer.agents == ("writer", "editor")
    assert [c.by_fallback for c in writer.calls] == [False, False, True]
    assert (writer.agent, writer.ran_by, writer.status) == ("writer", "editor", "succeeded")
    assert researcher.retries == 0 and not researcher.fell_back
    assert reviewer.parent_step_id == writer.id
    assert (trace.retries, trace.fallbacks) == (1, 1)


def test_a_runs_trace_adds_up_to_what_the_run_cost_and_used(runs: Runs) -> None:
    trace = runs.orc.runs.trace(runs.research)
    result = runs.orc.run(runs.research).result()

    assert trace.cost_micro == round(result.cost_usd * 1e6) > 0
    assert trace.tokens == result.tokens
    for step, step_result in zip(trace.steps, result.steps, strict=True):
        assert step.cost_micro == round(step_result.cost_usd * 1e6)
        assert step.tokens == step_result.tokens
    assert trace.cost_of("editor") == trace.steps[1].calls[2].cost_micro > 0
    assert trace.cost_of("writer") == 0  # rate-limited calls bring no usage
    assert trace.finished and trace.duration_s() > 0


def test_a_step_that_never_ran_is_in_the_trace_as_pending(runs: Runs) -> None:
    trace = runs.orc.runs.trace(runs.doomed)

    assert trace.status == "failed" and trace.error is not None
    _, critic, reviewer = trace.steps
    assert [(c.agent, c.outcome) for c in critic.calls] == [("critic", "rejected")]
    assert critic.status == "failed"
    assert (reviewer.agent, reviewer.status, reviewer.calls, reviewer.ran) == (
        "reviewer",
        "pending",
        (),
        False,
    )


def test_prompts_and_outputs_are_only_loaded_when_asked_for(runs: Runs) -> None:
    plain = runs.orc.runs.trace(runs.research)
    full = runs.orc.runs.trace(runs.research, include_io=True)

    assert all(call.io is None for call in plain.calls)
    with session_scope(runs.orc.database_url) as session:
        rows = {
            row.id: (row.prompt, row.output)
            for row in session.exec(select(TraceRow).where(TraceRow.workflow_id == runs.research))
        }
    assert {c.id: (c.io.prompt, c.io.output) for c in full.calls if c.io} == rows


def test_an_unknown_run_id_is_refused_with_what_to_check(runs: Runs) -> None:
    with pytest.raises(RunNotFound) as refused:
        load_run_trace(runs.orc.database_url, "nope")

    assert "no workflow run with id 'nope'" in str(refused.value)
    assert "check the id" in str(refused.value) and "AGENTYARD_DATABASE_URL" in str(refused.value)


def test_an_attempt_whose_worker_died_shows_as_no_call_on_record(
    inline_team: TeamFactory, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    agents, workflows = trace_team_members()
    orc, bus = inline_team(*agents, workflows=workflows)
    run = orc.submit("research", "the telegraph")
    bus.queue.popleft()  # the worker that took the request was killed mid-call
    with session_scope(orc.database_url) as session:
        session.exec(
            update(StepRow)
            .where(col(StepRow.position) == 0)
            .values(status="running", lease_until=utcnow() - timedelta(seconds=1))
        )
    assert Maintenance(orc.bus, orc.settings).sweep()["expired_leases"] == 1
    drain(orc, bus)
    commands_read(monkeypatch, orc)

    step = orc.runs.trace(run.id).steps[0]

    assert [c.attempt for c in step.calls] == [2] and step.unrecorded_attempts == (1,)
    assert cli.main(["trace", run.id]) == 0
    out = capsys.readouterr().out
    assert "attempt 1  no call on record (given up by the sweep)" in out
    assert re.search(r"attempt 2  researcher  succeeded", out)


# -- agentyard trace -------------------------------------------------------------------------------


def _tree(out: str) -> list[tuple[int, str]]:
    """Each line of a tree as (depth, text without the guide lines)."""
    lines = []
    for line in out.splitlines():
        text = line.lstrip("│├└─ ")
        lines.append(((len(line) - len(text)) // 4, text))
    return lines


def test_the_trace_command_prints_the_run_as_a_tree_of_steps_and_attempts(
    runs: Runs, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _cli(capsys, "trace", runs.research)

    assert (code, err) == (0, "")
    trace = runs.orc.runs.trace(runs.research)
    (depth, root), *lines = _tree(out)
    rest = [(d, t) for d, t in lines if not t.startswith("from: ")]
    sources = [t for _, t in lines if t.startswith("from: ")]
    first, second, _ = (step.id for step in trace.steps)
    assert sources == [  # under each step, where each piece of its prompt came from
        "from: workflow input (untrusted)",
        f"from: workflow input (untrusted), step researcher {first} (untrusted)",
        f"from: workflow input (untrusted), step researcher {first} (untrusted), "
        f"step editor {second} (untrusted)",
    ]
    assert depth == 0
    assert root.startswith(f"workflow research  {runs.research}  succeeded  took ")
    assert f"${trace.cost_micro / 1e6:.6f}" in root
    assert f"tokens {trace.tokens.input} in / {trace.tokens.output} out" in root
    assert [(d, t.split("  ")[:3]) for d, t in rest] == [
        (1, ["step 1", "researcher", "succeeded"]),
        (2, ["attempt 1", "researcher", "succeeded"]),
        (1, ["step 2", "editor", "succeeded"]),
        (2, ["attempt 1", "writer", "rate_limited"]),
        (2, ["attempt 2", "writer", "rate_limited"]),
        (2, ["attempt 3", "editor", "succeeded"]),
        (1, ["step 3", "reviewer", "succeeded"]),
        (2, ["attempt 1", "reviewer", "succeeded"]),
    ]
    writer_step = rest[2][1]
    assert writer_step.endswith("1 retry  fallback: writer -> editor")
    assert f"${trace.steps[1].cost_micro / 1e6:.6f}" in writer_step
    assert "error: injected rate_limited from offline:echo?fail=rate_limited" in rest[3][1]


def test_the_trace_command_shows_a_step_that_never_ran_as_pending(
    runs: Runs, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _cli(capsys, "trace", "unit:orc", runs.doomed)  # with the team, too

    assert code == 0
    lines = _tree(out)
    assert " failed " in lines[0][1]
    assert lines[1] == (1, "error: " + shorten(runs.orc.runs.trace(runs.doomed).error or "", 240))
    assert lines[-1] == (1, "step 3  reviewer  pending")


def test_a_run_under_way_shows_the_attempt_in_flight_and_how_long_it_has_run(
    inline_team: TeamFactory, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    agents, workflows = trace_team_members()
    orc, _ = inline_team(*agents, workflows=workflows)
    run = orc.submit("research", "the telegraph")  # step 1 dispatched, no worker took it yet
    commands_read(monkeypatch, orc)

    code, out, _ = _cli(capsys, "trace", run.id)

    assert code == 0
    lines = [line for line in _tree(out) if not line[1].startswith("from: ")]
    assert lines[0][1].startswith(f"workflow research  {run.id}  running  running for ")
    assert lines[1:] == [
        (1, "step 1  researcher  dispatched"),
        (2, "attempt 1  researcher  dispatched"),
        (1, "step 2  writer  pending"),
        (1, "step 3  reviewer  pending"),
    ]
    assert orc.runs.trace(run.id).steps[0].in_flight == 1


def test_the_trace_command_prints_no_prompt_or_output_unless_asked(
    runs: Runs, capsys: pytest.CaptureFixture[str]
) -> None:
    _, plain, _ = _cli(capsys, "trace", runs.research)
    _, full, _ = _cli(capsys, "trace", runs.research, "--show-io")

    for marker in ("prompt:", "output:", "Request:", "offline answer"):
        assert marker not in plain
    io = [text for _, text in _tree(full) if text.startswith(("prompt: ", "output: "))]
    assert len(io) == 2 * 5  # a prompt and an output under each of the five attempts
    assert "prompt: the telegraph" in io
    assert all(len(text) <= len("output: ") + 200 for text in io)  # shortened


def test_the_trace_output_is_plain_text_when_not_on_a_terminal(
    runs: Runs, capsys: pytest.CaptureFixture[str]
) -> None:
    _, out, _ = _cli(capsys, "trace", runs.research)

    assert "\x1b[" not in out  # no colour codes when piped
    assert max(len(line) for line in out.splitlines()) > 80  # nor wrapped at 80 columns


def test_the_trace_and_the_graph_name_the_runs_opentelemetry_trace_and_each_calls_span(
    spans: InMemorySpanExporter, runs: Runs, capsys: pytest.CaptureFixture[str]
) -> None:
    trace_id = runs.research.replace("-", "")  # a run's trace is named by the run

    _, tree, _ = _cli(capsys, "trace", runs.research)
    _, out, _ = _cli(capsys, "graph", runs.research, "--format", "json")

    assert tree.splitlines()[0].endswith(f"  trace {trace_id}")
    graph = json.loads(out)
    assert graph["workflow"]["trace_id"] == trace_id
    assert {n["trace_id"] for n in graph["nodes"]} == {trace_id}
    spans = [n["span_id"] for n in graph["nodes"]]
    assert len(set(spans)) == 5 and all(re.fullmatch(r"[0-9a-f]{16}", s) for s in spans)


def test_a_run_recorded_without_opentelemetry_ids_shows_none(
    runs: Runs, capsys: pytest.CaptureFixture[str]
) -> None:
    with session_scope(runs.orc.database_url) as session:  # as rows from before migration 0010
        session.exec(
            update(TraceRow)
            .where(col(TraceRow.workflow_id) == runs.doomed)
            .values(trace_id=None, span_id=None)
        )

    _, tree, _ = _cli(capsys, "trace", runs.doomed)
    _, out, _ = _cli(capsys, "graph", runs.doomed, "--format", "json")

    assert " trace " not in tree.splitlines()[0]
    assert json.loads(out)["workflow"]["trace_id"] is None


def test_the_trace_command_fails_saying_so_for_a_run_not_in_the_database(
    runs: Runs, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _cli(capsys, "trace", "no-such-run")

    assert (code, out) == (cli.ExitCode.NOT_FOUND, "")
    assert "no workflow run with id 'no-such-run'" in err


def test_shorten_keeps_one_line_and_marks_the_cut() -> None:
    assert shorten("a  b\nc", 10) == "a b c"
    assert shorten("x" * 30, 10) == "x" * 9 + "…"


# -- agentyard graph ------------------------------------------------------------------------------

RESEARCH_EDGES = [
    ("s1a1", "s2a1", "input"),
    ("s2a1", "s2a2", "retry"),
    ("s2a2", "s2a3", "fallback"),
    ("s2a3", "s3a1", "input"),
]


def test_the_json_graph_has_one_node_per_call_and_input_retry_and_fallback_edges(
    runs: Runs, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _cli(capsys, "graph", runs.research, "--format", "json")

    assert code == 0
    graph = json.loads(out)
    assert graph["schema"] == 1
    assert set(graph) == {"schema", "workflow", "nodes", "edges", "node_runs"}
    assert graph["node_runs"] == []  # a sequence has no loop, fan-out, parallel or route
    workflow = graph["workflow"]
    assert (workflow["id"], workflow["name"], workflow["status"]) == (
        runs.research,
        "research",
        "succeeded",
    )
    assert (workflow["retries"], workflow["fallbacks"]) == (1, 1)
    assert [n["id"] for n in graph["nodes"]] == ["s1a1", "s2a1", "s2a2", "s2a3", "s3a1"]
    assert len({frozenset(n) for n in graph["nodes"]}) == 1  # every node has every key
    assert [(e["source"], e["target"], e["kind"]) for e in graph["edges"]] == RESEARCH_EDGES
    fallback = graph["nodes"][3]
    assert (fallback["kind"], fallback["agent"], fallback["requested_agent"]) == (
        "call",
        "editor",
        "writer",
    )
    assert (fallback["attempt"], fallback["status"]) == (3, "succeeded")
    assert sum(n["cost_micro"] for n in graph["nodes"]) == workflow["cost_micro"] > 0
    with session_scope(runs.orc.database_url) as session:
        call_ids = set(session.exec(select(TraceRow.id)).all())
    assert {n["call_id"] for n in graph["nodes"]} <= call_ids
    assert "prompt" not in out and "the telegraph" not in out


def test_a_step_that_never_ran_is_a_node_of_the_graph_fed_by_the_failed_step(
    runs: Runs, capsys: pytest.CaptureFixture[str]
) -> None:
    _, out, _ = _cli(capsys, "graph", runs.doomed, "--format", "json")

    graph = json.loads(out)
    pending = graph["nodes"][-1]
    assert (pending["id"], pending["kind"], pending["status"], pending["agent"]) == (
        "s3",
        "step",
        "pending",
        "reviewer",
    )
    assert (pending["attempt"], pending["tokens"], pending["call_id"]) == (None, None, None)
    assert [(e["source"], e["target"], e["kind"]) for e in graph["edges"]] == [
        ("s1a1", "s2a1", "input"),
        ("s2a1", "s3", "input"),
    ]


_MERMAID_NODE = re.compile(r'^ {8}(\w+)\["([^"\[\]]*)"\]$')
_MERMAID_EDGE = re.compile(r"^ {4}(\w+) (-->|-\.->)\|(\w+)\| (\w+)$")


def test_the_mermaid_graph_is_a_flowchart_with_a_line_per_node_and_per_edge(
    runs: Runs, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _cli(capsys, "graph", runs.research)  # mermaid is the default

    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "flowchart LR"
    nodes = {m[1]: m[2] for m in map(_MERMAID_NODE.match, lines) if m}
    edges = [(m[1], m[4], m[3], m[2]) for m in map(_MERMAID_EDGE.match, lines) if m]
    assert list(nodes) == ["s1a1", "s2a1", "s2a2", "s2a3", "s3a1"]
    assert [e[:3] for e in edges] == RESEARCH_EDGES
    assert [arrow for *_, arrow in edges] == ["-->", "-.->", "-.->", "-->"]
    assert nodes["s2a3"] == "editor, attempt 3<br/>succeeded<br/>$" + nodes["s2a3"].split("$")[1]
    opened = [line for line in lines if line.lstrip().startswith("subgraph ")]
    assert len(opened) == 3 == sum(line.strip() == "end" for line in lines)
    classes = dict(line.split()[1:3][::-1] for line in lines if line.lstrip().startswith("class "))
    assert classes == {"ok": "s1a1,s2a3,s3a1", "failed": "s2a1,s2a2"}
    # every line is a node, an edge, or one of the flowchart's own statements
    known = ("flowchart", "%%", "subgraph", "end", "classDef", "class")
    for line in lines:
        assert (
            _MERMAID_NODE.match(line) or _MERMAID_EDGE.match(line) or (line.split()[0] in known)
        ), line


def test_mermaid_labels_escape_quotes_brackets_and_markup() -> None:
    assert mermaid_text('say "hi" [x] (y) {z} <b> #1 | `c`') == (
        "say #quot;hi#quot; #91;x#93; #40;y#41; #123;z#125; #lt;b#gt; #35;1 #124; #96;c#96;"
    )
    assert mermaid_text("two\nlines") == "two lines"


_DOT_NODE = re.compile(r'^ {8}(\w+) \[label="((?:[^"\\]|\\.)*)", fillcolor="#[0-9a-f]{6}"\];$')
_DOT_EDGE = re.compile(r'^ {4}(\w+) -> (\w+) \[label="(\w+)"(, style=dashed)?\];$')


def test_the_dot_graph_is_a_digraph_with_balanced_braces_and_an_edge_per_dependency(
    runs: Runs, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _cli(capsys, "graph", runs.doomed, "--format", "dot")

    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "digraph run {" and lines[-1] == "}"
    unquoted = re.sub(r'"(?:[^"\\]|\\.)*"', '""', out)
    assert unquoted.count("{") == unquoted.count("}") == 4  # the graph and a cluster per step
    nodes = [m[1] for m in map(_DOT_NODE.match, lines) if m]
    edges = [(m[1], m[2], m[3], bool(m[4])) for m in map(_DOT_EDGE.match, lines) if m]
    assert nodes == ["s1a1", "s2a1", "s3"]
    assert edges == [("s1a1", "s2a1", "input", False), ("s2a1", "s3", "input", False)]
    assert sum(line.strip().startswith("subgraph cluster_step") for line in lines) == 3


def test_dot_labels_escape_quotes_and_backslashes() -> None:
    assert dot_text('a "b" \\ c\nd') == 'a \\"b\\" \\\\ c d'


def test_the_graph_of_a_retry_marks_retry_and_fallback_edges_dashed_in_dot(runs: Runs) -> None:
    graph = build_graph(runs.orc.runs.trace(runs.research))

    dot = to_dot(graph)
    assert '    s2a1 -> s2a2 [label="retry", style=dashed];' in dot
    assert '    s2a2 -> s2a3 [label="fallback", style=dashed];' in dot
    assert '    s1a1 -> s2a1 [label="input"];' in dot
    assert "    s2a2 -.->|fallback| s2a3" in to_mermaid(graph)


def test_the_graph_command_writes_to_a_file_when_asked(
    runs: Runs, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    target = tmp_path / "run.json"

    code, out, _ = _cli(capsys, "graph", runs.research, "--format", "json", "--output", str(target))

    assert code == 0
    assert out == (
        f"wrote the json graph of run {runs.research} (5 node(s), 4 edge(s)) to {target}\n"
    )
    assert len(json.loads(target.read_text())["nodes"]) == 5


def test_the_graph_command_says_what_to_do_when_it_cannot_write_the_file(
    runs: Runs, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    target = tmp_path / "missing" / "run.dot"

    code, out, err = _cli(capsys, "graph", runs.research, "--output", str(target))

    assert (code, out) == (cli.ExitCode.USAGE, "")
    assert f"cannot write {target}" in err and "a directory that exists" in err


def test_the_graph_command_fails_saying_so_for_a_run_not_in_the_database(
    runs: Runs, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _cli(capsys, "graph", "no-such-run", "--format", "dot")

    assert (code, out) == (cli.ExitCode.NOT_FOUND, "")
    assert "no workflow run with id 'no-such-run'" in err
