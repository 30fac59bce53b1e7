"""How a run's trace and the runs a query found look in a terminal (``agentyard trace`` and
``agentyard find``), drawn with ``rich``.

Colour follows the status (green succeeded, red failed, yellow refused, dim waiting, blue under
way); every fact is also written in words, so the output reads the same piped to a file, where
rich draws no colour and no line is wrapped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import IO

from rich.console import Console
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from orchestration.guards.spotlight import unmark_prompt
from orchestration.results import ApprovalOutcome, Tokens, ToolCallResult
from orchestration.run_trace import CallTrace, RunTrace, StepTrace
from orchestration.trace_queries import FoundRun, RunQuery
from orchestration.trace_style import Tone, format_duration, format_usd, tone_of
from orchestration.workflow.gates import short
from orchestration.workflow.graph import (
    JOIN,
    ApprovalNode,
    CheckNode,
    Node,
    StepNode,
    VerifyNode,
    kind_of,
)
from orchestration.workflow.kinds import kind
from orchestration.workflow.state import TOP, summary_node
from storage.errors import ToolApprovalNeeded
from storage.models import TOOL_USE

_STYLE = {
    Tone.OK: "green",
    Tone.FAILED: "red",
    Tone.REFUSED: "yellow",
    Tone.WAITING: "dim",
    Tone.ACTIVE: "blue",
}
ERROR_CHARS = 120
IO_CHARS = 200
# Off a terminal nothing limits the width: lines are written whole, never wrapped or cut.
_UNLIMITED = 100_000


def console_for(file: IO[str] | None = None) -> Console:
    """A console writing to ``file`` (stdout by default): colour on a terminal only."""
    console = Console(file=file, highlight=False)
    if not console.is_terminal:
        console = Console(file=file, highlight=False, width=_UNLIMITED)
    return console


def shorten(text: str, limit: int) -> str:
    """``text`` on one line, cut to ``limit`` characters with an ellipsis."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _tokens(tokens: Tokens) -> str:
    text = f"tokens {tokens.input} in / {tokens.output} out"
    if tokens.cache_creation or tokens.cache_read:
        text += f" (+cache {tokens.cache_creation} written, {tokens.cache_read} read)"
    return text


def _status(status: str) -> Text:
    return Text(status, style=_STYLE[tone_of(status)])


def _line(*parts: str | Text) -> Text:
    """Parts two spaces apart; plain strings are text, never markup."""
    return Text("  ").join(part if isinstance(part, Text) else Text(part) for part in parts)


def trace_tree(run: RunTrace, *, show_io: bool = False, now: datetime | None = None) -> Tree:
    """The run as a tree: the workflow, one node per step, one per attempt under it."""
    took = format_duration(run.duration_s(now))
    root = _line(
        Text(f"workflow {run.name}", style="bold"),
        run.id,
        _status(run.status),
        f"took {took}" if run.finished else f"running for {took}",
        f"model time {format_duration(run.latency_ms / 1000)}",
        _tokens(run.tokens),
        format_usd(run.cost_micro),
    )
    if run.trace_id:
        root.append(f"  trace {run.trace_id}")
    tree = Tree(root)
    if run.error:
        tree.add(Text(f"error: {shorten(run.error, ERROR_CHARS * 2)}", style="red"))
    if run.is_graph and run.graph is not None:
        _add_nodes(tree, run, run.graph.nodes, TOP, show_io)
        return tree
    for step in run.steps:
        _add_step(tree, step, show_io)
    return tree


def _add_nodes(
    tree: Tree, run: RunTrace, nodes: tuple[Node, ...], scope: str, show_io: bool
) -> None:
    """The nodes of one frame, in the order the workflow lists them: a step with its attempts;
    a loop, fan-out, parallel or route with what it came to, then each iteration or branch that
    started, with the nodes of its frame under it. The run's summary of what came up to a node,
    if one was written, follows that node."""
    for node in nodes:
        _add_node(tree, run, node, scope, show_io)
        summary = run.step_at(scope, summary_node(node.name))
        if summary is not None:
            _add_step(tree, summary, show_io, title="summary")


def _add_node(tree: Tree, run: RunTrace, node: Node, scope: str, show_io: bool) -> None:
    if isinstance(node, StepNode):
        step = run.step_at(scope, node.name)
        if step is not None:
            _add_step(tree, step, show_io)
        return
    if isinstance(node, CheckNode):
        return  # its verdicts are under the step it judged
    if isinstance(node, VerifyNode):
        verifier = run.step_at(scope, node.name)
        if verifier is not None:
            _add_step(tree, verifier, show_io, title=node.name)
        return
    if isinstance(node, ApprovalNode):
        asked = run.approval_at(scope, node.name)
        if asked is not None:
            _add_approval(tree, asked)
        elif scope == TOP:
            tree.add(Text(f"approval {node.gate}  not reached", style="dim"))
        return
    ran = run.node_at(scope, node.name)
    if ran is None:
        if scope == TOP:
            tree.add(Text(f"{node.name}  {kind_of(node)}  not reached", style="dim"))
        return
    outcome = ran.outcome
    branch = tree.add(
        _line(
            Text(node.name, style="bold"),
            outcome.kind,
            _status(outcome.status),
            outcome.summary,
        )
    )
    if outcome.error:
        branch.add(Text(f"error: {shorten(outcome.error, ERROR_CHARS)}", style="red"))
    for frame in ran.frames:
        if frame.status == "waiting":
            continue  # said in the summary: "n not started"
        held = branch.add(_line(frame.title, _status(frame.status)))
        _add_nodes(held, run, kind(outcome.kind).sequence(node, frame.index), frame.scope, show_io)
    join = run.step_at(scope, node.name + JOIN)
    if join is not None:
        _add_step(branch, join, show_io, title="join")


_APPROVAL_STYLE = {"approved": "green", "rejected": "red", "timed_out": "yellow"}


def _when(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M:%S} UTC"


def _add_approval(tree: Tree, asked: ApprovalOutcome) -> None:
    """A gate: what it asked for (its hash), when, until when; who decided, when, and why."""
    parts: list[str | Text] = [
        Text(f"approval {asked.gate}", style="bold"),
        Text(asked.status, style=_APPROVAL_STYLE.get(asked.status, "dim")),
    ]
    if asked.decided_by is not None:
        parts.append(f"by {asked.decided_by}")
    parts.append(f"hash {short(asked.subject_hash)}")
    node = tree.add(_line(*parts))
    again = (
        f" (asked {asked.requests} times: what it follows changed)" if asked.requests > 1 else ""
    )
    due = "" if asked.due_at is None else f", due {_when(asked.due_at)} (then {asked.on_timeout})"
    node.add(Text(f"requested {_when(asked.requested_at)}{due}{again}", style="dim"))
    if asked.decided_at is not None:
        who = f" by {asked.decided_by}" if asked.decided_by is not None else ""
        note = f"  note: {shorten(asked.note, ERROR_CHARS)}" if asked.note else ""
        node.add(Text(f"{asked.status}{who} at {_when(asked.decided_at)}{note}"))


def _add_step(tree: Tree, step: StepTrace, show_io: bool, title: str | None = None) -> None:
    parts: list[str | Text] = [
        Text(title or f"step {step.position + 1}", style="bold"),
        step.ran_by or step.agent,
        _status(step.status),
    ]
    if step.ran:
        parts += [
            f"latency {format_duration(step.latency_ms / 1000)}",
            _tokens(step.tokens),
            format_usd(step.cost_micro),
            f"{step.retries} {'retry' if step.retries == 1 else 'retries'}",
        ]
    if step.fell_back:
        parts.append(Text(f"fallback: {' -> '.join(step.agents)}", style="yellow"))
    node = tree.add(_line(*parts))
    if step.provenance:
        sources = ", ".join(f"{p.source} ({p.trust})" for p in step.provenance)
        node.add(Text(f"from: {sources}", style="dim"))
    for finding in step.findings:
        node.add(
            Text(
                f"injection suspected: {finding.kind} in {finding.source} "
                f"(score {finding.score:.2f}, {finding.action}): {finding.evidence}",
                style="red" if finding.action == "quarantine" else "yellow",
            )
        )
    tools, waited = _tool_lines(step)
    lines = [
        _StepLine((call.attempt, n), _call_line(call), call, waited.get(n))
        for n, call in enumerate(step.calls)
    ]
    lines += [
        _StepLine(
            (n, -1), Text(f"attempt {n}  no call on record (given up by the sweep)", style="dim")
        )
        for n in step.unrecorded_attempts
    ]
    if step.in_flight is not None:
        line = _line(f"attempt {step.in_flight}", step.ran_by or step.agent, _status(step.status))
        lines.append(_StepLine((step.in_flight, len(step.calls)), line))
    lines += tools
    for result in step.checks:
        verdict = "passed" if result.ok else "refused"
        line = _line(
            f"check {result.name}", Text(verdict, style="green" if result.ok else "yellow")
        )
        reason = (
            "" if result.ok or not result.reason else f": {shorten(result.reason, ERROR_CHARS)}"
        )
        text = Text.assemble(line, f" attempt {result.attempt}{reason}")
        lines.append(_StepLine((result.attempt, len(step.calls)), text))
    for item in sorted(lines, key=lambda item: item.place):
        branch = node.add(item.text)
        if item.approval is not None:
            _add_approval(branch, item.approval)
        call = item.call
        if show_io and call is not None and call.io is not None:
            prompt = unmark_prompt(call.io.prompt)  # as a person reads it, its data marks gone
            branch.add(Text(f"prompt: {shorten(prompt, IO_CHARS)}", style="dim"))
            answer = "-" if call.io.output is None else shorten(call.io.output, IO_CHARS)
            branch.add(Text(f"output: {answer}", style="dim"))


def _tool_lines(step: StepTrace) -> tuple[list[_StepLine], dict[int, ApprovalOutcome]]:
    """The step's tool calls, each right after the answer that asked for it (the answers that
    asked for tools are on record in turn order: one read back after a restart is not called
    again); and the approvals they waited for, by the call (its place in ``step.calls``) of the
    attempt that stopped for each. A call that waited goes after that attempt: it ran in the
    one after the decision."""
    turns = [(call.attempt, n) for n, call in enumerate(step.calls) if call.outcome == TOOL_USE]
    stops = [
        (call.attempt, n)
        for n, call in enumerate(step.calls)
        if call.outcome == ToolApprovalNeeded.kind
    ]
    lines: list[_StepLine] = []
    waited: dict[int, ApprovalOutcome] = {}
    for tool_call in step.tool_calls:
        place = turns[tool_call.turn] if tool_call.turn < len(turns) else None
        attempt, after = place or (step.attempt, len(step.calls))
        approval = step.approval_of(tool_call)
        stop = next(((a, n) for a, n in stops if n > after), None) if approval else None
        if approval is not None and stop is not None:
            stops.remove(stop)
            attempt, after = stop
            waited[after] = approval
            approval = None  # shown under the attempt that stopped for it
        lines.append(_StepLine((attempt, after + 0.5), _tool_line(tool_call), approval=approval))
    return lines, waited


@dataclass(frozen=True, slots=True)
class _StepLine:
    """A line under a step, in the order it happened (``place``: its attempt, then its place
    among that attempt's lines): a call, a tool call (with the approval it waited for, if it
    did), a check's verdict."""

    place: tuple[int, float]
    text: Text
    call: CallTrace | None = None
    approval: ApprovalOutcome | None = None


def _tool_line(call: ToolCallResult) -> Text:
    arguments = ", ".join(f"{name}={value!r}" for name, value in call.arguments.items())
    if call.status == "started":
        outcome = Text("outcome unknown", style="red")
    elif call.is_error:
        outcome = Text(f"error: {shorten(call.result or '', ERROR_CHARS)}", style="yellow")
    else:
        outcome = Text(f"-> {shorten(call.result or '', ERROR_CHARS)}")
    took = "" if call.duration_ms is None else f"  {format_duration(call.duration_ms / 1000)}"
    runs = "" if call.runs == 1 else f"  ran {call.runs} times"
    return Text.assemble(
        Text(f"tool {call.tool}", style="bold"),
        f"({shorten(arguments, ERROR_CHARS)})  ",
        outcome,
        took,
        runs,
    )


def _call_line(call: CallTrace) -> Text:
    if call.outcome == ToolApprovalNeeded.kind:  # not a call: the attempt stopped for a person
        return _line(
            f"attempt {call.attempt}", call.agent, Text("waits for approval", style="yellow")
        )
    parts: list[str | Text] = [
        f"attempt {call.attempt}",
        call.agent,
        _status(call.outcome),
        f"latency {format_duration(call.latency_ms / 1000)}",
        _tokens(call.tokens),
        format_usd(call.cost_micro),
    ]
    if call.late:
        wire = call.wire_ms
        on_wire = "" if wire is None else f" (wire {format_duration(wire / 1000)})"
        parts.append(Text(f"late{on_wire}: answer used", style="yellow"))
    if call.error:
        parts.append(Text(f"error: {shorten(call.error, ERROR_CHARS)}", style="red"))
    return _line(*parts)


# -- agentyard find --------------------------------------------------------------------------------


def found_title(query: RunQuery, found: Sequence[FoundRun]) -> str:
    """One sentence: what was asked, over which runs, and how many were found."""
    return f"{len(found)} run(s) {query.describe()}" + (
        f" (the first {query.limit})" if len(found) >= query.limit else ""
    )


def found_table(query: RunQuery, found: Sequence[FoundRun]) -> Table:
    """One row per run found: id, workflow, status, when, duration, cost (and the agent's)."""
    table = Table(box=None, pad_edge=False, padding=(0, 2, 0, 0), show_edge=False)
    for column in ("RUN", "TEAM", "WORKFLOW", "STATUS", "CREATED (UTC)", "DURATION", "COST"):
        table.add_column(column, no_wrap=True)
    if query.agent is not None:
        table.add_column(f"COST OF {query.agent.upper()}", no_wrap=True)
    for run in found:
        took = format_duration(run.duration_s) + ("" if run.finished else " (running)")
        cells: list[str | Text] = [
            run.id,
            run.team,
            run.workflow,
            _status(run.status),
            run.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            took,
            format_usd(run.cost_micro),
        ]
        if query.agent is not None:
            cells.append(f"{format_usd(run.agent_cost_micro or 0)} in {run.agent_calls} call(s)")
        table.add_row(*cells)
    return table
