"""A run's dependency graph, built from its trace records (``agentyard graph``).

Nodes are the model calls, one per trace row, and the steps with no call on record yet (pending,
or dispatched and not recorded). Edges say why a node follows another:

- ``input``: the step's first call (or the step) takes the output of its parent step's final
  call (or of the parent step, while it has no call);
- ``retry``: the next attempt of the same step, on the same agent;
- ``fallback``: the next attempt of the same step, on the agent's fallback.

Node ids are stable and readable: ``s2a3`` is step 2's attempt 3 (steps count from 1), ``s3`` a
step with no call yet.

The JSON rendering has this shape (``schema`` changes only if a key's meaning does; keys may be
added)::

    {"schema": 1,
     "workflow": {"id", "team", "name", "status", "created_at", "finished_at", "duration_s",
                  "cost_micro", "cost_usd", "latency_ms", "tokens", "retries", "fallbacks",
                  "trace_id", "error"},
     "nodes": [{"id", "kind": "call" | "step", "step", "step_id", "agent", "requested_agent",
                "attempt", "status", "cost_micro", "cost_usd", "latency_ms", "tokens", "error",
                "call_id", "trace_id", "span_id", "started_at", "finished_at"}],
     "edges": [{"source", "target", "kind": "input" | "retry" | "fallback"}]}

Every node has every key: a call's ``status`` is its outcome; a step node has ``attempt``,
``latency_ms``, ``tokens``, ``call_id``, ``started_at`` and ``finished_at`` null. Times are ISO
8601 UTC, money in micro-dollars (and USD), tokens ``{"input", "output", "cache_creation",
"cache_read", "cache_creation_1h"}``. Prompts and outputs are never in the graph.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise
from typing import Any, Literal

from orchestration.results import Tokens
from orchestration.run_trace import (
    CallTrace,
    Link,
    RunTrace,
    StepTrace,
    Tone,
    format_duration,
    format_usd,
    tone_of,
)

SCHEMA = 1
EdgeKind = Literal["input", "retry", "fallback"]


@dataclass(frozen=True, slots=True)
class GraphNode:
    """A call, or a step with no call on record yet."""

    id: str
    step: StepTrace
    call: CallTrace | None = None

    @property
    def kind(self) -> Literal["call", "step"]:
        return "step" if self.call is None else "call"

    @property
    def agent(self) -> str:
        return self.call.agent if self.call is not None else (self.step.ran_by or self.step.agent)

    @property
    def status(self) -> str:
        """A call's outcome, or the step's status."""
        return self.call.outcome if self.call is not None else self.step.status


@dataclass(frozen=True, slots=True)
class GraphEdge:
    source: str
    target: str
    kind: EdgeKind


@dataclass(frozen=True, slots=True)
class RunGraph:
    run: RunTrace
    nodes: tuple[GraphNode, ...]
    edges: tuple[GraphEdge, ...]


def build_graph(run: RunTrace) -> RunGraph:
    """The calls of ``run`` and its steps with no call yet, and the edges between them: for
    each step in order, the edge of its input, then those between its attempts."""
    taken: set[str] = set()
    chains: dict[str, list[GraphNode]] = {}
    for step in run.steps:
        chains[step.id] = [
            GraphNode(_unique(f"s{step.position + 1}a{call.attempt}", taken), step, call)
            for call in step.calls
        ] or [GraphNode(_unique(f"s{step.position + 1}", taken), step)]
    edges: list[GraphEdge] = []
    for index, step in enumerate(run.steps):
        chain = chains[step.id]
        # Runs recorded before steps named their parent are sequences: the previous step.
        parent = step.parent_step_id or (run.steps[index - 1].id if index else None)
        if parent in chains:
            edges.append(GraphEdge(chains[parent][-1].id, chain[0].id, "input"))
        for before, after in pairwise(chain):
            kind: EdgeKind = "retry"
            if after.call is not None and after.call.link is Link.FALLBACK:
                kind = "fallback"
            edges.append(GraphEdge(before.id, after.id, kind))
    nodes = tuple(node for step in run.steps for node in chains[step.id])
    return RunGraph(run, nodes, tuple(edges))


def _unique(wanted: str, taken: set[str]) -> str:
    name, n = wanted, 1
    while name in taken:
        n += 1
        name = f"{wanted}_{n}"
    taken.add(name)
    return name


# -- labels shared by mermaid and dot --------------------------------------------------------


def label_lines(node: GraphNode) -> list[str]:
    """What a node says: the agent and the attempt, the outcome, the cost and latency."""
    if node.call is None:
        return [f"step {node.step.position + 1}: {node.agent}", node.status]
    call = node.call
    return [
        f"{call.agent}, attempt {call.attempt}",
        call.outcome,
        f"{format_usd(call.cost_micro)} in {format_duration(call.latency_ms / 1000)}",
    ]


def _step_title(step: StepTrace) -> str:
    return f"step {step.position + 1}: {step.agent}"


def _run_title(run: RunTrace) -> str:
    return f"workflow {run.name} {run.id}: {run.status}"


# -- JSON ----------------------------------------------------------------------------------------


def _when(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _tokens(tokens: Tokens) -> dict[str, int]:
    return {
        "input": tokens.input,
        "output": tokens.output,
        "cache_creation": tokens.cache_creation,
        "cache_read": tokens.cache_read,
        "cache_creation_1h": tokens.cache_creation_1h,
    }


def _node_json(node: GraphNode) -> dict[str, Any]:
    call, step = node.call, node.step
    cost = call.cost_micro if call is not None else 0
    return {
        "id": node.id,
        "kind": node.kind,
        "step": step.position + 1,
        "step_id": step.id,
        "agent": node.agent,
        "requested_agent": step.agent,
        "attempt": call.attempt if call is not None else None,
        "status": node.status,
        "cost_micro": cost,
        "cost_usd": cost / 1e6,
        "latency_ms": round(call.latency_ms, 3) if call is not None else None,
        "tokens": _tokens(call.tokens) if call is not None else None,
        "error": call.error if call is not None else step.error,
        "call_id": call.id if call is not None else None,
        "trace_id": call.trace_id if call is not None else None,
        "span_id": call.span_id if call is not None else None,
        "started_at": _when(call.started_at) if call is not None else None,
        "finished_at": _when(call.finished_at) if call is not None else None,
    }


def graph_dict(graph: RunGraph, now: datetime | None = None) -> dict[str, Any]:
    """The graph as plain JSON-able data, in the shape the module docstring documents."""
    run = graph.run
    return {
        "schema": SCHEMA,
        "workflow": {
            "id": run.id,
            "team": run.team,
            "name": run.name,
            "status": run.status,
            "created_at": _when(run.created_at),
            "finished_at": _when(run.finished_at),
            "duration_s": round(run.duration_s(now), 3),
            "cost_micro": run.cost_micro,
            "cost_usd": run.cost_usd,
            "latency_ms": round(run.latency_ms, 3),
            "tokens": _tokens(run.tokens),
            "retries": run.retries,
            "fallbacks": run.fallbacks,
            "trace_id": run.trace_id,
            "error": run.error,
        },
        "nodes": [_node_json(node) for node in graph.nodes],
        "edges": [{"source": e.source, "target": e.target, "kind": e.kind} for e in graph.edges],
    }


def to_json(graph: RunGraph) -> str:
    return json.dumps(graph_dict(graph), indent=2, ensure_ascii=False) + "\n"


# -- Mermaid -------------------------------------------------------------------------------------

# Inside a quoted label Mermaid reads "#name;" and "#code;" as entities: anything that could end
# the label or start markup is written that way, "#" itself first of all.
_MERMAID_ESCAPES = {
    "#": "#35;",
    '"': "#quot;",
    "<": "#lt;",
    ">": "#gt;",
    "[": "#91;",
    "]": "#93;",
    "(": "#40;",
    ")": "#41;",
    "{": "#123;",
    "}": "#125;",
    "|": "#124;",
    "`": "#96;",
}
_MERMAID_CLASSES = {
    Tone.OK: "fill:#dcf5e3,stroke:#2e7d32",
    Tone.FAILED: "fill:#fbe0e0,stroke:#c62828",
    Tone.REFUSED: "fill:#fff1d6,stroke:#ef6c00",
    Tone.WAITING: "fill:#eeeeee,stroke:#9e9e9e,stroke-dasharray:4 3",
    Tone.ACTIVE: "fill:#dde9fb,stroke:#1565c0",
}


def mermaid_text(text: str) -> str:
    """``text`` made safe inside a quoted Mermaid label (one line)."""
    return "".join(_MERMAID_ESCAPES.get(char, char) for char in " ".join(text.split()))


def to_mermaid(graph: RunGraph) -> str:
    """A Mermaid ``flowchart``: a subgraph per step, an edge per dependency, coloured by tone."""
    lines = ["flowchart LR", f"    %% {mermaid_text(_run_title(graph.run))}"]
    by_step: dict[str, list[GraphNode]] = {}
    for node in graph.nodes:
        by_step.setdefault(node.step.id, []).append(node)
    for step in graph.run.steps:
        lines.append(f'    subgraph step{step.position + 1}["{mermaid_text(_step_title(step))}"]')
        for node in by_step.get(step.id, []):
            label = "<br/>".join(mermaid_text(line) for line in label_lines(node))
            lines.append(f'        {node.id}["{label}"]')
        lines.append("    end")
    arrows = {"input": "-->", "retry": "-.->", "fallback": "-.->"}
    lines.extend(f"    {e.source} {arrows[e.kind]}|{e.kind}| {e.target}" for e in graph.edges)
    toned: dict[Tone, list[str]] = {}
    for node in graph.nodes:
        toned.setdefault(tone_of(node.status), []).append(node.id)
    for tone, style in _MERMAID_CLASSES.items():
        if tone in toned:
            lines.append(f"    classDef {tone.value} {style}")
            lines.append(f"    class {','.join(toned[tone])} {tone.value}")
    return "\n".join(lines) + "\n"


# -- Graphviz dot ----------------------------------------------------------------------------------

_DOT_FILL = {
    Tone.OK: "#dcf5e3",
    Tone.FAILED: "#fbe0e0",
    Tone.REFUSED: "#fff1d6",
    Tone.WAITING: "#eeeeee",
    Tone.ACTIVE: "#dde9fb",
}


def dot_text(text: str) -> str:
    """``text`` as the inside of a double-quoted dot string (one line)."""
    return " ".join(text.split()).replace("\\", "\\\\").replace('"', '\\"')


def to_dot(graph: RunGraph) -> str:
    """A Graphviz ``digraph``: a cluster per step, an edge per dependency, filled by tone."""
    lines = [
        "digraph run {",
        f'    label="{dot_text(_run_title(graph.run))}";',
        "    labelloc=t;",
        "    rankdir=LR;",
        '    node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=10];',
        '    edge [fontname="Helvetica", fontsize=9];',
    ]
    for step in graph.run.steps:
        lines.append(f"    subgraph cluster_step{step.position + 1} {{")
        lines.append(f'        label="{dot_text(_step_title(step))}";')
        for node in (n for n in graph.nodes if n.step.id == step.id):
            label = "\\n".join(dot_text(line) for line in label_lines(node))
            fill = _DOT_FILL[tone_of(node.status)]
            lines.append(f'        {node.id} [label="{label}", fillcolor="{fill}"];')
        lines.append("    }")
    for edge in graph.edges:
        style = "" if edge.kind == "input" else ", style=dashed"
        lines.append(f'    {edge.source} -> {edge.target} [label="{edge.kind}"{style}];')
    lines.append("}")
    return "\n".join(lines) + "\n"


FORMATS: dict[str, Callable[[RunGraph], str]] = {
    "mermaid": to_mermaid,
    "dot": to_dot,
    "json": to_json,
}
