"""A run's graph written for people and tools that draw: Mermaid ``flowchart`` and Graphviz
``digraph`` (and, for ``agentyard graph --format``, the JSON of ``run_graph``).

A subgraph (or cluster) per step holds its calls; a node says its agent and attempt, its outcome,
its cost and latency, and is coloured by tone; ``input`` edges are solid, ``retry`` and
``fallback`` dashed. Every text from the records is escaped for the format it goes into.
"""

from __future__ import annotations

from collections.abc import Callable

from orchestration.run_graph import GraphNode, RunGraph, to_json
from orchestration.run_trace import RunTrace, StepTrace
from orchestration.trace_style import Tone, format_duration, format_usd, tone_of

# -- labels shared by both -------------------------------------------------------------------


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
