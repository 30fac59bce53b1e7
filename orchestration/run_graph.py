"""A run's dependency graph, built from its trace records (``agentyard graph``), and its JSON;
Mermaid and Graphviz dot are drawn from it in ``graph_formats``.

Nodes are the model calls, one per trace row, and the steps with no call on record yet (pending,
or dispatched and not recorded). Edges say why a node follows another:

- ``input``: the step's first call (or the step) takes the output of its parent step's final
  call (or of the parent step, while it has no call);
- ``retry``: the next attempt of the same step, on the same agent;
- ``turn``: the next answer of a step's tool loop (its tools' results given back), in the same
  attempt, or in the one after a tool call waited for a person's approval;
- ``fallback``: the next attempt of the same step, on the agent's fallback;
- ``loop`` (a run of a graph): a loop's iteration to the next one, the loop's back edge;
- ``join`` (a run of a graph): a fan-out's or parallel's branches to what takes their joined
  output (the join agent, or the next node).

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
                "call_id", "trace_id", "span_id", "started_at", "finished_at",
                "node", "iteration", "branch", "scope"}],
     "edges": [{"source", "target",
                "kind": "input" | "retry" | "turn" | "fallback" | "loop" | "join"}],
     "node_runs": [{"id", "node", "kind", "scope", "status", "summary", "error",
                    "frames": [{"index", "scope", "title", "status"}]}]}

Every node has every key: a call's ``status`` is its outcome; a step node has ``attempt``,
``latency_ms``, ``tokens``, ``call_id``, ``started_at`` and ``finished_at`` null. Times are ISO
8601 UTC, money in micro-dollars (and USD), tokens ``{"input", "output", "cache_creation",
"cache_read", "cache_creation_1h"}``. Prompts and outputs are never in the graph.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise
from typing import Any, Literal

from orchestration.results import Tokens
from orchestration.run_trace import CallTrace, FrameTrace, Link, NodeTrace, RunTrace, StepTrace
from orchestration.workflow.graph import (
    JOIN,
    PASS_THROUGH,
    FanOutNode,
    LoopNode,
    Node,
    ParallelNode,
    StepNode,
    VerifyNode,
    kind_of,
)
from orchestration.workflow.kinds import kind
from orchestration.workflow.state import TOP

SCHEMA = 1
EdgeKind = Literal["input", "retry", "turn", "fallback", "loop", "join"]


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
    each step in order, the edge of its input, then those between its attempts. A run of a
    graph draws its edges from the graph itself (``_Structure``): the loop's back edge from an
    iteration to the next, each branch of a fan-out or parallel, and the join."""
    taken: set[str] = set()
    chains: dict[str, list[GraphNode]] = {}
    for step in run.steps:
        chains[step.id] = [
            GraphNode(_unique(f"s{step.position + 1}a{call.attempt}", taken), step, call)
            for call in step.calls
        ] or [GraphNode(_unique(f"s{step.position + 1}", taken), step)]
    edges: list[GraphEdge] = []
    if run.is_graph and run.graph is not None:
        edges.extend(_Structure(run, chains).edges(run.graph.nodes, TOP))
    for index, step in enumerate(run.steps):
        chain = chains[step.id]
        if not run.is_graph:
            # Runs recorded before steps named their parent are sequences: the previous step.
            parent = step.parent_step_id or (run.steps[index - 1].id if index else None)
            if parent in chains:
                edges.append(GraphEdge(chains[parent][-1].id, chain[0].id, "input"))
        for before, after in pairwise(chain):
            kind: EdgeKind = "retry"
            if after.call is not None and after.call.link is Link.FALLBACK:
                kind = "fallback"
            elif after.call is not None and after.call.link is Link.TURN:
                kind = "turn"
            edges.append(GraphEdge(before.id, after.id, kind))
    nodes = tuple(node for step in run.steps for node in chains[step.id])
    return RunGraph(run, nodes, tuple(edges))


class _Structure:
    """The edges a graph's shape gives a run: within a frame, each node's exits to the next
    node's entries (``input``; ``join`` from a fan-out's or parallel's branches); in a loop, the
    last iteration's exits to the next one's entries (``loop``: the back edge); a join agent
    fed by every branch (``join``). A node's entries are its first calls, its exits its last (a
    loop's: its last draft's)."""

    def __init__(self, run: RunTrace, chains: dict[str, list[GraphNode]]) -> None:
        self._run = run
        self._chains = chains

    def edges(self, nodes: tuple[Node, ...], scope: str) -> list[GraphEdge]:
        nodes = tuple(n for n in nodes if not isinstance(n, PASS_THROUGH))  # checks, gates
        found: list[GraphEdge] = []
        for before, after in pairwise(nodes):
            kind: EdgeKind = "join" if isinstance(before, FanOutNode | ParallelNode) else "input"
            found += self._link(self.exits(before, scope), self.entries(after, scope), kind)
        for node in nodes:
            ran = self._ran(node, scope)
            if ran is None:
                continue
            sequences = [self._sequence(node, frame) for frame in ran.frames]
            for sequence, frame in zip(sequences, ran.frames, strict=True):
                found += self.edges(sequence, frame.scope)
            if isinstance(node, LoopNode):
                for (one, first), (nxt, second) in pairwise(
                    zip(sequences, ran.frames, strict=True)
                ):
                    found += self._link(
                        self._exits_of(one, first.scope),
                        self._entries_of(nxt, second.scope),
                        "loop",
                    )
            join = self._run.step_at(scope, node.name + JOIN)
            if join is not None:
                branch_exits = [
                    e
                    for sequence, frame in zip(sequences, ran.frames, strict=True)
                    for e in self._exits_of(sequence, frame.scope)
                ]
                found += self._link(branch_exits, [self._chains[join.id][0].id], "join")
        return found

    def entries(self, node: Node, scope: str) -> list[str]:
        if isinstance(node, StepNode | VerifyNode):
            step = self._run.step_at(scope, node.name)
            return [] if step is None else [self._chains[step.id][0].id]
        ran = self._ran(node, scope)
        if ran is None:
            return []
        frames = ran.frames[:1] if isinstance(node, LoopNode) else ran.frames
        return [e for f in frames for e in self._entries_of(self._sequence(node, f), f.scope)]

    def exits(self, node: Node, scope: str) -> list[str]:
        if isinstance(node, StepNode | VerifyNode):
            step = self._run.step_at(scope, node.name)
            return [] if step is None else [self._chains[step.id][-1].id]
        ran = self._ran(node, scope)
        if ran is None:
            return []
        join = self._run.step_at(scope, node.name + JOIN)
        if join is not None:
            return [self._chains[join.id][-1].id]
        started = [f for f in ran.frames if f.status != "waiting"]
        if isinstance(node, LoopNode):  # what flows on is the last draft: its first node's
            return [e for f in started[-1:] for e in self.exits(node.body[0], f.scope)]
        return [e for f in started for e in self._exits_of(self._sequence(node, f), f.scope)]

    def _entries_of(self, sequence: tuple[Node, ...], scope: str) -> list[str]:
        first = next((node for node in sequence if not isinstance(node, PASS_THROUGH)), None)
        return [] if first is None else self.entries(first, scope)

    def _exits_of(self, sequence: tuple[Node, ...], scope: str) -> list[str]:
        for node in reversed(sequence):  # a frame that stopped early ends where it stopped
            found = self.exits(node, scope)
            if found:
                return found
        return []

    def _ran(self, node: Node, scope: str) -> NodeTrace | None:
        return self._run.node_at(scope, node.name)

    @staticmethod
    def _sequence(node: Node, frame: FrameTrace) -> tuple[Node, ...]:
        return kind(kind_of(node)).sequence(node, frame.index)

    @staticmethod
    def _link(sources: list[str], targets: list[str], kind: EdgeKind) -> list[GraphEdge]:
        return [GraphEdge(source, target, kind) for source in sources for target in targets]


def _unique(wanted: str, taken: set[str]) -> str:
    name, n = wanted, 1
    while name in taken:
        n += 1
        name = f"{wanted}_{n}"
    taken.add(name)
    return name


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
        "node": step.node,
        "iteration": step.iteration,
        "branch": step.branch,
        "scope": step.scope,
    }


def _node_run_json(ran: NodeTrace) -> dict[str, Any]:
    outcome = ran.outcome
    return {
        "id": ran.id,
        "node": outcome.node,
        "kind": outcome.kind,
        "scope": outcome.scope,
        "status": outcome.status,
        "summary": outcome.summary,
        "error": outcome.error,
        "frames": [
            {"index": f.index, "scope": f.scope, "title": f.title, "status": f.status}
            for f in ran.frames
        ],
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
        "node_runs": [_node_run_json(ran) for ran in run.nodes],
    }


def to_json(graph: RunGraph) -> str:
    return json.dumps(graph_dict(graph), indent=2, ensure_ascii=False) + "\n"
