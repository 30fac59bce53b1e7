"""A workflow as a graph of typed nodes: what the user wrote, checked, named and kept as JSON.

The user lists nodes (``step``, ``check``, ``verify``, ``approval``, ``loop``, ``fan_out``,
``parallel``, ``route``, or a bare agent id for a step); ``build_graph`` checks them, gives each
a stable name (``researcher``, ``loop1/editor``, ``fan_out1/summarizer``, ``route1/long/splitter``,
``publish`` for a gate) and returns a frozen ``Graph``. ``Graph.to_json`` is what a run's row
keeps, so that a run in flight keeps its definition across deploys; ``Graph.from_json`` reads it
back. Nothing here runs anything: the interpreter asks each node's kind what to do.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, TypeAlias

from orchestration.workflow.functions import FunctionRef
from storage.errors import InvalidDefinition, UnknownAgent

SCHEMA = 1
MAX_DEPTH = 3  # a loop in a fan-out in a route, and no deeper
MAX_ITERATIONS = 100

OnLimit = Literal["fail", "best"]
OnFailure = Literal["fail_fast", "collect"]
OnInjection = Literal["flag", "quarantine"]
OnTimeout = Literal["reject", "approve", "fail"]
DAY_S = 86_400.0
MAX_APPROVAL_WAIT_S = 366 * DAY_S


@dataclass(frozen=True, slots=True)
class ToolApprovals:
    """Which tool calls of a run wait for a person's approval before they run: those of tools
    declared ``needs_approval=True`` always; with ``untrusted_side_effects``, also every call of
    a tool with side effects from a step whose context holds untrusted text (the workflow's
    input, an output derived from it, a tool's result). Nobody deciding within ``timeout_s``
    (None: no limit but the run's deadline) applies ``on_timeout``."""

    untrusted_side_effects: bool = False
    timeout_s: float | None = DAY_S
    on_timeout: OnTimeout = "reject"

    def to_json(self) -> dict[str, Any]:
        return {
            "untrusted_side_effects": self.untrusted_side_effects,
            "timeout_s": self.timeout_s,
            "on_timeout": self.on_timeout,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> ToolApprovals:
        if not data:
            return cls()
        on_timeout = data.get("on_timeout")
        timeout_s = data.get("timeout_s", DAY_S)
        return cls(
            untrusted_side_effects=bool(data.get("untrusted_side_effects")),
            timeout_s=None if timeout_s is None else float(timeout_s),
            on_timeout=on_timeout if on_timeout in ("approve", "fail") else "reject",
        )


@dataclass(frozen=True, slots=True)
class Join:
    """How a fan-out's or a parallel's branches become one text: by default, every branch's
    output in item (or branch) order; or an agent given them all; or ``merge(outputs) -> str``."""

    agent: str | None = None
    merge: FunctionRef | None = None


@dataclass(frozen=True, slots=True)
class StepNode:
    agent: str
    name: str = ""
    checks: tuple[FunctionRef, ...] = ()  # each judges the step's output before it goes on
    max_reasks: int = 1  # how often a refused output is asked for again, before the fallback


Against = Literal["facts", "input"]


@dataclass(frozen=True, slots=True)
class VerifyNode:
    """A checkpoint an agent keeps: it judges the output of the node before it against ground
    truth (the run's facts, or its input), answering a fixed verdict shape; the output passes
    on unchanged when it is accepted."""

    agent: str
    against: Against = "facts"
    max_reasks: int = 1
    name: str = ""


@dataclass(frozen=True, slots=True)
class CheckNode:
    """A checkpoint between nodes: ``check`` judges the output of the node before it, which
    passes on unchanged when it is accepted."""

    check: FunctionRef
    max_reasks: int = 1
    name: str = ""


@dataclass(frozen=True, slots=True)
class ApprovalNode:
    """A gate a person keeps: the output of the node before it waits for their approval, then
    passes on unchanged (exactly what was approved); rejected, the run ends ``rejected``.
    Nobody deciding within ``timeout_s`` (None: no limit but the run's deadline) applies
    ``on_timeout``. ``gate`` is what people call it, once in a workflow."""

    gate: str
    timeout_s: float | None = None
    on_timeout: OnTimeout = "reject"
    name: str = ""


@dataclass(frozen=True, slots=True)
class LoopNode:
    body: tuple[Node, ...]
    max_iterations: int
    until: FunctionRef | None = None
    converge_at: float | None = None
    on_limit: OnLimit = "fail"
    similarity: FunctionRef | None = None
    name: str = ""


@dataclass(frozen=True, slots=True)
class FanOutNode:
    body: tuple[Node, ...]
    over: FunctionRef
    max_parallel: int | None = None
    join: Join = field(default_factory=Join)
    on_failure: OnFailure = "fail_fast"
    name: str = ""


@dataclass(frozen=True, slots=True)
class ParallelNode:
    branches: tuple[tuple[Node, ...], ...]
    join: Join = field(default_factory=Join)
    on_failure: OnFailure = "fail_fast"
    name: str = ""


@dataclass(frozen=True, slots=True)
class RouteNode:
    by: FunctionRef
    branches: tuple[tuple[str, tuple[Node, ...]], ...]  # (label, its nodes), in the order given
    default: str | None = None
    name: str = ""


Node: TypeAlias = (
    StepNode
    | CheckNode
    | VerifyNode
    | ApprovalNode
    | LoopNode
    | FanOutNode
    | ParallelNode
    | RouteNode
)
Item: TypeAlias = Node | str  # what a user lists: a node, or an agent id for step(id)

NODE_TYPES = (
    StepNode,
    CheckNode,
    VerifyNode,
    ApprovalNode,
    LoopNode,
    FanOutNode,
    ParallelNode,
    RouteNode,
)
LEAF_TYPES = (StepNode, CheckNode, VerifyNode, ApprovalNode)  # nodes that hold no others
# Checkpoints that call no model: what they are given passes on, or stops there.
PASS_THROUGH = (CheckNode, ApprovalNode)
_KIND: dict[type, str] = {
    StepNode: "step",
    CheckNode: "check",
    VerifyNode: "verify",
    ApprovalNode: "approval",
    LoopNode: "loop",
    FanOutNode: "fan_out",
    ParallelNode: "parallel",
    RouteNode: "route",
}


def kind_of(node: Node) -> str:
    return _KIND[type(node)]


JOIN = ".join"  # a join agent's step is named after its node: fan_out1.join


@dataclass(frozen=True, slots=True)
class Place:
    """Where a node sits: the composite node whose frames hold it (None: the top level), the
    nodes of its frame in order, and its index among them. A join agent's step sits in no
    frame: ``join_of`` is its fan-out or parallel, and ``index`` is -1."""

    node: Node
    owner: Node | None
    sequence: tuple[Node, ...]
    index: int
    join_of: FanOutNode | ParallelNode | None = None

    @property
    def last(self) -> bool:
        return self.index == len(self.sequence) - 1

    @property
    def next(self) -> Node:
        return self.sequence[self.index + 1]


@dataclass(frozen=True, slots=True)
class Graph:
    """The checked, named nodes of a workflow, run in order, what its runs do with a suspected
    injection (``flag``: record it and go on; ``quarantine``: the step is not run), and the
    agent that writes the summary of earlier steps once their text no longer fits a prompt
    (None: their first sentences stand in for them), and which tool calls wait for approval."""

    nodes: tuple[Node, ...]
    on_injection: OnInjection = "flag"
    summarizer: str | None = None
    tool_approvals: ToolApprovals = field(default_factory=ToolApprovals)
    _places: dict[str, Place] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )

    def walk(self) -> Iterator[Node]:
        """Every node, parents before their children, in the order written."""
        yield from _walk(self.nodes)

    def node(self, name: str) -> Node:
        return self.place(name).node

    def place(self, name: str) -> Place:
        """Where the node named ``name`` sits (``KeyError`` for a name the graph lacks)."""
        if not self._places:
            self._places.update(_index_places(self.nodes, owner=None))
        return self._places[name]

    def agents(self) -> list[str]:
        """Every agent the workflow may call (join agents included), each once."""
        seen: dict[str, None] = {}
        for node in self.walk():
            if isinstance(node, StepNode | VerifyNode):
                seen[node.agent] = None
            elif isinstance(node, FanOutNode | ParallelNode) and node.join.agent is not None:
                seen[node.join.agent] = None
        if self.summarizer is not None:
            seen[self.summarizer] = None
        return list(seen)

    def check_agents(self, known: Iterable[str], workflow: str) -> None:
        """``UnknownAgent`` if a node names an agent that is not registered."""
        registered = set(known)
        missing = [agent for agent in self.agents() if agent not in registered]
        if missing:
            raise UnknownAgent(
                f"workflow {workflow!r} names agent(s) {missing} that are not registered; "
                "register them with orc.register_agent(...) first"
            )

    @property
    def gates(self) -> tuple[ApprovalNode, ...]:
        """Its approval gates, in the order written."""
        return tuple(node for node in self.walk() if isinstance(node, ApprovalNode))

    @property
    def is_sequence(self) -> bool:
        return all(isinstance(node, StepNode) for node in self.nodes)

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "nodes": [_encode(node) for node in self.nodes],
            "on_injection": self.on_injection,
            "summarizer": self.summarizer,
            "tool_approvals": self.tool_approvals.to_json(),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Graph:
        if data.get("schema") != SCHEMA:
            raise InvalidDefinition(
                f"a workflow graph of schema {data.get('schema')!r}, this version reads "
                f"{SCHEMA}; run the agentyard version that started the run"
            )
        quarantine = data.get("on_injection") == "quarantine"
        return cls(
            tuple(_decode(node) for node in data["nodes"]),
            on_injection="quarantine" if quarantine else "flag",
            summarizer=data.get("summarizer"),
            tool_approvals=ToolApprovals.from_json(data.get("tool_approvals")),
        )


def build_graph(
    items: Sequence[Item],
    workflow: str,
    on_injection: OnInjection = "flag",
    summarizer: str | None = None,
    tool_approvals: ToolApprovals | None = None,
) -> Graph:
    """The graph of ``items`` as the user listed them: each checked, bare ids made steps, and
    every node named. ``InvalidDefinition`` says what is wrong and where."""
    nodes = _as_nodes(items, f"workflow {workflow!r}")
    depth = max((_depth(node) for node in nodes), default=0)
    if depth > MAX_DEPTH:
        raise InvalidDefinition(
            f"workflow {workflow!r} nests loops, fan-outs, parallels and routes {depth} deep; "
            f"at most {MAX_DEPTH} are allowed: make the inner part a workflow of its own"
        )
    named = _named(nodes, prefix="", counters=Counter())
    gates = Counter(node.gate for node in _walk(named) if isinstance(node, ApprovalNode))
    twice = sorted(gate for gate, n in gates.items() if n > 1)
    if twice:
        raise InvalidDefinition(
            f"workflow {workflow!r} names the approval gate(s) {twice} more than once; a gate is "
            "what people approve by name: give each approval(...) a name of its own"
        )
    return Graph(
        named,
        on_injection=on_injection,
        summarizer=summarizer,
        tool_approvals=tool_approvals or ToolApprovals(),
    )


def as_nodes(items: Sequence[Item] | Item, where: str) -> tuple[Node, ...]:
    """``items`` (one item, or a list of them) as nodes; bare agent ids become steps."""
    return _as_nodes([items] if isinstance(items, (str, *NODE_TYPES)) else items, where)


def _as_nodes(items: Sequence[Item] | Any, where: str) -> tuple[Node, ...]:
    if isinstance(items, str) or not isinstance(items, Sequence):
        raise InvalidDefinition(
            f"{where} takes a list of nodes (agent ids, step(...), loop(...), ...), got "
            f"{type(items).__name__} {items!r}"
        )
    if not items:
        raise InvalidDefinition(f"{where} is empty: give it at least one agent or node")
    nodes: list[Node] = []
    for item in items:
        if isinstance(item, str):
            nodes.append(StepNode(item))
        elif isinstance(item, NODE_TYPES):
            nodes.append(item)
        else:
            raise InvalidDefinition(
                f"{where}: {item!r} is not a node; list agent ids or step(...), check(...), "
                "verify(...), approval(...), loop(...), fan_out(...), parallel(...), route(...)"
            )
    return tuple(nodes)


def _walk(nodes: Iterable[Node]) -> Iterator[Node]:
    for node in nodes:
        yield node
        yield from _walk(_children(node))


def _index_places(nodes: tuple[Node, ...], owner: Node | None) -> Iterator[tuple[str, Place]]:
    for index, node in enumerate(nodes):
        yield node.name, Place(node, owner, nodes, index)
        for sequence in sequences(node):
            yield from _index_places(sequence, node)
        if isinstance(node, FanOutNode | ParallelNode) and node.join.agent is not None:
            join = StepNode(node.join.agent, node.name + JOIN)
            yield join.name, Place(join, node, (), -1, join_of=node)


def sequences(node: Node) -> tuple[tuple[Node, ...], ...]:
    """The sequences of nodes a composite node runs in its frames (none for a step)."""
    if isinstance(node, LoopNode | FanOutNode):
        return (node.body,)
    if isinstance(node, ParallelNode):
        return node.branches
    if isinstance(node, RouteNode):
        return tuple(branch for _, branch in node.branches)
    return ()


def _children(node: Node) -> Iterator[Node]:
    if isinstance(node, LoopNode | FanOutNode):
        yield from node.body
    elif isinstance(node, ParallelNode):
        for branch in node.branches:
            yield from branch
    elif isinstance(node, RouteNode):
        for _, branch in node.branches:
            yield from branch


def _depth(node: Node) -> int:
    if isinstance(node, LEAF_TYPES):
        return 0
    return 1 + max((_depth(child) for child in _children(node)), default=0)


def _named(nodes: tuple[Node, ...], prefix: str, counters: Counter[str]) -> tuple[Node, ...]:
    """The nodes named under ``prefix``: a step by its agent (``-2`` on a repeat in the same
    scope), an approval by its gate, any other node by its kind and number in the workflow
    (``loop1``, ``loop2``, ``check1``)."""
    used: Counter[str] = Counter()
    named: list[Node] = []
    for node in nodes:
        if isinstance(node, StepNode):
            base = node.agent
        elif isinstance(node, ApprovalNode):
            base = node.gate
        else:
            counters[kind_of(node)] += 1
            base = f"{kind_of(node)}{counters[kind_of(node)]}"
        used[base] += 1
        name = f"{prefix}{base}" + (f"-{used[base]}" if used[base] > 1 else "")
        named.append(_with_children_named(replace(node, name=name), counters))
    return tuple(named)


def _with_children_named(node: Node, counters: Counter[str]) -> Node:
    inside = f"{node.name}/"
    if isinstance(node, LoopNode | FanOutNode):
        return replace(node, body=_named(node.body, inside, counters))
    if isinstance(node, ParallelNode):
        # The branches share one scope: a name says the node, the step's branch says which.
        flat = _named(tuple(n for branch in node.branches for n in branch), inside, counters)
        sizes, at, branches = [len(b) for b in node.branches], 0, []
        for size in sizes:
            branches.append(flat[at : at + size])
            at += size
        return replace(node, branches=tuple(branches))
    if isinstance(node, RouteNode):
        return replace(
            node,
            branches=tuple(
                (label, _named(branch, f"{inside}{label}/", counters))
                for label, branch in node.branches
            ),
        )
    return node


# -- JSON ------------------------------------------------------------------------------------------


def _ref(ref: FunctionRef | None) -> str | None:
    return None if ref is None else ref.path


def _unref(path: str | None) -> FunctionRef | None:
    return None if path is None else FunctionRef.parse(path)


def _encode_join(join: Join) -> dict[str, Any]:
    return {"agent": join.agent, "merge": _ref(join.merge)}


def _encode(node: Node) -> dict[str, Any]:
    base: dict[str, Any] = {"kind": kind_of(node), "name": node.name}
    if isinstance(node, StepNode):
        checks = {"checks": [c.path for c in node.checks], "max_reasks": node.max_reasks}
        return {**base, "agent": node.agent, **(checks if node.checks else {})}
    if isinstance(node, CheckNode):
        return {**base, "check": node.check.path, "max_reasks": node.max_reasks}
    if isinstance(node, VerifyNode):
        return {
            **base,
            "agent": node.agent,
            "against": node.against,
            "max_reasks": node.max_reasks,
        }
    if isinstance(node, ApprovalNode):
        return {
            **base,
            "gate": node.gate,
            "timeout_s": node.timeout_s,
            "on_timeout": node.on_timeout,
        }
    if isinstance(node, LoopNode):
        return {
            **base,
            "body": [_encode(n) for n in node.body],
            "max_iterations": node.max_iterations,
            "until": _ref(node.until),
            "converge_at": node.converge_at,
            "on_limit": node.on_limit,
            "similarity": _ref(node.similarity),
        }
    if isinstance(node, FanOutNode):
        return {
            **base,
            "body": [_encode(n) for n in node.body],
            "over": node.over.path,
            "max_parallel": node.max_parallel,
            "join": _encode_join(node.join),
            "on_failure": node.on_failure,
        }
    if isinstance(node, ParallelNode):
        return {
            **base,
            "branches": [[_encode(n) for n in branch] for branch in node.branches],
            "join": _encode_join(node.join),
            "on_failure": node.on_failure,
        }
    return {
        **base,
        "by": node.by.path,
        "branches": [[label, [_encode(n) for n in branch]] for label, branch in node.branches],
        "default": node.default,
    }


def _decode_join(data: Mapping[str, Any]) -> Join:
    return Join(agent=data.get("agent"), merge=_unref(data.get("merge")))


def _decode(data: Mapping[str, Any]) -> Node:
    kind, name = data["kind"], data["name"]
    if kind == "step":
        return StepNode(
            data["agent"],
            name,
            checks=tuple(FunctionRef.parse(path) for path in data.get("checks", ())),
            max_reasks=int(data.get("max_reasks", 1)),
        )
    if kind == "check":
        return CheckNode(FunctionRef.parse(data["check"]), int(data["max_reasks"]), name)
    if kind == "verify":
        return VerifyNode(data["agent"], data["against"], int(data["max_reasks"]), name)
    if kind == "approval":
        timeout = data.get("timeout_s")
        return ApprovalNode(
            data["gate"],
            None if timeout is None else float(timeout),
            data.get("on_timeout", "reject"),
            name,
        )
    if kind == "loop":
        return LoopNode(
            body=tuple(_decode(n) for n in data["body"]),
            max_iterations=int(data["max_iterations"]),
            until=_unref(data.get("until")),
            converge_at=data.get("converge_at"),
            on_limit=data.get("on_limit", "fail"),
            similarity=_unref(data.get("similarity")),
            name=name,
        )
    if kind == "fan_out":
        return FanOutNode(
            body=tuple(_decode(n) for n in data["body"]),
            over=FunctionRef.parse(data["over"]),
            max_parallel=data.get("max_parallel"),
            join=_decode_join(data.get("join") or {}),
            on_failure=data.get("on_failure", "fail_fast"),
            name=name,
        )
    if kind == "parallel":
        return ParallelNode(
            branches=tuple(tuple(_decode(n) for n in branch) for branch in data["branches"]),
            join=_decode_join(data.get("join") or {}),
            on_failure=data.get("on_failure", "fail_fast"),
            name=name,
        )
    if kind == "route":
        return RouteNode(
            by=FunctionRef.parse(data["by"]),
            branches=tuple(
                (str(label), tuple(_decode(n) for n in branch))
                for label, branch in data["branches"]
            ),
            default=data.get("default"),
            name=name,
        )
    raise InvalidDefinition(f"a workflow graph node of unknown kind {kind!r} ({name})")
