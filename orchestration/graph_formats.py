"""A run's graph written for people and tools that draw: Mermaid ``flowchart`` and Graphviz
``digraph`` (and, for ``agentyard graph --format``, the JSON of ``run_graph``).

A subgraph (or cluster) per step holds its calls; in a run of a graph, each loop, fan-out,
parallel and route is a box around its iterations or branches, each a box of its own. A node
says its agent and attempt, its outcome, its cost and latency, and is coloured by tone;
``input``, ``turn`` and ``join`` edges are solid, ``retry`` and ``fallback`` dashed, a loop's
back edge (``loop``) thick. Every text from the records is escaped for the format it goes into.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import count

from orchestration.run_graph import GraphNode, RunGraph, to_json
from orchestration.run_trace import RunTrace, StepTrace
from orchestration.trace_style import Tone, format_duration, format_usd, tone_of
from orchestration.workflow.graph import JOIN, Node, StepNode, VerifyNode
from orchestration.workflow.kinds import kind
from orchestration.workflow.state import TOP, summary_node

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


@dataclass(frozen=True, slots=True)
class Block:
    """A box drawn around what a loop, fan-out, parallel or route ran (its title says what it
    came to), or around one of its iterations or branches."""

    id: str
    title: str
    items: tuple[StepTrace | Block, ...]


def blocks(run: RunTrace) -> list[StepTrace | Block]:
    """What a run's graph drawing holds, outermost first: its steps in order, or for a run of a
    graph, its steps and the blocks of its node runs, in the order the workflow lists them."""
    if not run.is_graph or run.graph is None:
        return list(run.steps)
    numbers = count(1)
    return _frame_items(run, run.graph.nodes, TOP, numbers)


def _frame_items(
    run: RunTrace, nodes: tuple[Node, ...], scope: str, numbers: Iterator[int]
) -> list[StepTrace | Block]:
    items: list[StepTrace | Block] = []
    for node in nodes:
        items.extend(_node_items(run, node, scope, numbers))
        summary = run.step_at(scope, summary_node(node.name))  # the run's summary up to it
        if summary is not None:
            items.append(summary)
    return items


def _node_items(
    run: RunTrace, node: Node, scope: str, numbers: Iterator[int]
) -> list[StepTrace | Block]:
    if isinstance(node, StepNode | VerifyNode):
        step = run.step_at(scope, node.name)
        return [step] if step is not None else []
    ran = run.node_at(scope, node.name)
    if ran is None:
        return []
    outcome = ran.outcome
    number = next(numbers)
    held: list[StepTrace | Block] = [
        Block(
            f"n{number}f{frame.index}",
            f"{frame.title}: {frame.status}",
            tuple(
                _frame_items(
                    run, kind(outcome.kind).sequence(node, frame.index), frame.scope, numbers
                )
            ),
        )
        for frame in ran.frames
        if frame.status != "waiting"
    ]
    join = run.step_at(scope, node.name + JOIN)
    if join is not None:
        held.append(join)
    title = f"{node.name} ({outcome.kind}) {outcome.status}: {outcome.summary}"
    return [Block(f"n{number}", title, tuple(held))]


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
    """A Mermaid ``flowchart``: a subgraph per step (in a graph's run, nested in a subgraph per
    loop, fan-out, parallel or route and one per iteration or branch), an edge per dependency
    (a loop's back edge thick), coloured by tone."""
    lines = ["flowchart LR", f"    %% {mermaid_text(_run_title(graph.run))}"]
    by_step: dict[str, list[GraphNode]] = {}
    for node in graph.nodes:
        by_step.setdefault(node.step.id, []).append(node)

    def emit(item: StepTrace | Block, indent: str) -> None:
        if isinstance(item, Block):
            lines.append(f'{indent}subgraph {item.id}["{mermaid_text(item.title)}"]')
            for child in item.items:
                emit(child, indent + "    ")
            lines.append(f"{indent}end")
            return
        lines.append(
            f'{indent}subgraph step{item.position + 1}["{mermaid_text(_step_title(item))}"]'
        )
        for node in by_step.get(item.id, []):
            label = "<br/>".join(mermaid_text(line) for line in label_lines(node))
            lines.append(f'{indent}    {node.id}["{label}"]')
        lines.append(f"{indent}end")

    for item in blocks(graph.run):
        emit(item, "    ")
    arrows = {
        "input": "-->",
        "retry": "-.->",
        "turn": "-->",
        "fallback": "-.->",
        "loop": "==>",
        "join": "-->",
    }
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

    def emit(item: StepTrace | Block, indent: str) -> None:
        if isinstance(item, Block):
            lines.append(f"{indent}subgraph cluster_{item.id} {{")
            lines.append(f'{indent}    label="{dot_text(item.title)}";')
            for child in item.items:
                emit(child, indent + "    ")
            lines.append(f"{indent}}}")
            return
        lines.append(f"{indent}subgraph cluster_step{item.position + 1} {{")
        lines.append(f'{indent}    label="{dot_text(_step_title(item))}";')
        for node in (n for n in graph.nodes if n.step.id == item.id):
            label = "\\n".join(dot_text(line) for line in label_lines(node))
            fill = _DOT_FILL[tone_of(node.status)]
            lines.append(f'{indent}    {node.id} [label="{label}", fillcolor="{fill}"];')
        lines.append(f"{indent}}}")

    for item in blocks(graph.run):
        emit(item, "    ")
    styles = {
        "input": "",
        "turn": "",
        "join": "",
        "loop": ", style=bold",
        "retry": ", style=dashed",
    }
    for edge in graph.edges:
        style = styles.get(edge.kind, ", style=dashed")
        lines.append(f'    {edge.source} -> {edge.target} [label="{edge.kind}"{style}];')
    lines.append("}")
    return "\n".join(lines) + "\n"


FORMATS: dict[str, Callable[[RunGraph], str]] = {
    "mermaid": to_mermaid,
    "dot": to_dot,
    "json": to_json,
}
