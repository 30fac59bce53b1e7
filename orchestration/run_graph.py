"""A run's dependency graph, built from its trace records (``agentyard graph``), and its JSON;
Mermaid and Graphviz dot are drawn from it in ``graph_formats``.

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
from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise
from typing import Any, Literal

from orchestration.results import Tokens
from orchestration.run_trace import CallTrace, Link, RunTrace, StepTrace

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
