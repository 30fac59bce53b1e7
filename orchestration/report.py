"""How runs look in a terminal: one line per step as it changes, then the result; a run's
messages; the dead letters."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from bus.dead_letters import DeadLetter
from bus.message_log import AckState, LoggedMessage
from orchestration.results import ApprovalOutcome, NodeOutcome, StepResult, WorkflowResult
from orchestration.workflow.gates import described, short
from orchestration.workflow.state import describe_scope


def _seconds(step: StepResult) -> str:
    if step.started_at and step.finished_at:
        return f"{(step.finished_at - step.started_at).total_seconds():.2f}s"
    return "-"


def step_line(step: StepResult) -> str:
    agent = (
        step.agent
        if step.agent == step.requested_agent
        else f"{step.agent} (for {step.requested_agent})"
    )
    line = (
        f"  step {step.position + 1} {agent:<24} {step.status:<15} attempt {step.attempt}  "
        f"tokens in {step.tokens.input + step.tokens.cache_read + step.tokens.cache_creation:>6} "
        f"out {step.tokens.output:>6}  ${step.cost_usd:.6f}  {_seconds(step)}"
    )
    return line + _place(step)


def _place(step: StepResult) -> str:
    """Where in the workflow's graph a step ran, unless it is a step of a plain sequence."""
    if step.node is None or (step.node == step.requested_agent and not step.scope):
        return ""
    where = describe_scope(step.scope)
    return f"  {step.node}" + (f" ({where})" if where else "")


def node_line(node: NodeOutcome) -> str:
    where = describe_scope(node.scope)
    return (
        f"  {node.node} ({node.kind}{', ' + where if where else ''}) {node.status}: {node.summary}"
    )


def approve_command(run_id: str, gate: str, subject_hash: str, scope: str) -> str:
    """The command that approves what a gate waits for, bound to its hash (and its frame)."""
    where = f" --scope '{scope}'" if scope else ""
    return f"agentyard approve {run_id} {gate} --by NAME --hash {short(subject_hash)}{where}"


def approval_line(run_id: str, approval: ApprovalOutcome) -> str:
    where = f" ({describe_scope(approval.scope)})" if approval.scope else ""
    line = f"  {described(approval.kind, approval.gate)}{where} {approval.status}"
    if approval.decided_by is not None:
        line += f" by {approval.decided_by}"
    line += f", hash {short(approval.subject_hash)}"
    if approval.status == "requested":
        line += ": " + approve_command(run_id, approval.gate, approval.subject_hash, approval.scope)
    return line


def format_result(result: WorkflowResult, show_output: bool = True) -> str:
    tokens = result.tokens
    lines = [
        f"run {result.id}  workflow {result.workflow}  status {result.status.value}",
        f"cost ${result.cost_usd:.6f}  tokens in {tokens.input} out {tokens.output} "
        f"cache write {tokens.cache_creation} cache read {tokens.cache_read}",
    ]
    if result.finished_at is not None:
        lines.append(f"took {(result.finished_at - result.created_at).total_seconds():.2f}s")
    lines.append("steps:")
    lines.extend(step_line(step) for step in result.steps)
    if result.nodes:
        lines.append("loops, fan-outs, parallels and routes:")
        lines.extend(node_line(node) for node in result.nodes)
    if result.approvals:
        lines.append("approvals:")
        lines.extend(approval_line(result.id, approval) for approval in result.approvals)
    if result.error:
        lines.append(f"error: {result.error}")
    if show_output and result.output is not None:
        lines.extend(["output:", result.output])
    return "\n".join(lines)


class ProgressPrinter:
    """Prints a line each time a step changes status or attempt."""

    def __init__(self, write: Callable[[str], None] = print) -> None:
        self._write = write
        self._seen: dict[str, tuple[str, int]] = {}

    def __call__(self, result: WorkflowResult) -> None:
        for step in result.steps:
            state = (step.status, step.attempt)
            if self._seen.get(step.id) != state:
                self._seen[step.id] = state
                self._write(step_line(step))


# -- tables: a run's messages, the dead letters ---------------------------------------------------


def _moment(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Left-aligned columns two spaces apart; the last one is not padded."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header) - 1)]
    return [
        "  ".join([*(cell.ljust(w) for cell, w in zip(row, widths, strict=False)), row[-1]])
        for row in [header, *rows]
    ]


def ack_summary(message: LoggedMessage) -> str:
    """``-`` for a message that asked for no acknowledgement; otherwise how many recipients
    acknowledged, e.g. ``acked 2/3 (writer@1, reviewer@2; critic: dead-lettered)``: who
    acknowledged which attempt, then who did not and why."""
    if not message.requires_ack:
        return "-"
    acked = AckState.ACKNOWLEDGED
    done = [f"{a.recipient}@{a.attempt}" for a in message.acks if a.state is acked]
    owed = [f"{a.recipient}: {a.state}" for a in message.acks if a.state is not acked]
    parts = "; ".join(part for part in (", ".join(done), ", ".join(owed)) if part)
    summary = f"acked {len(done)}/{len(message.acks)}"
    return f"{summary} ({parts})" if parts else summary


def format_messages(run_id: str, messages: Sequence[LoggedMessage]) -> str:
    """A run's messages, one line each, in the order they were recorded."""
    title = f"run {run_id}: {len(messages)} message(s), oldest first"
    if not messages:
        return title
    rows = [
        (
            _moment(m.created_at),
            m.id,
            m.type,
            m.sender,
            ",".join(m.recipients) or "(nobody)",
            str(m.priority),
            str(m.attempt),
            "yes" if m.delivered else "no",
            ack_summary(m),
        )
        for m in messages
    ]
    header = ("TIME", "ID", "TYPE", "SENDER", "TO", "PRI", "ATTEMPT", "DELIVERED", "ACK")
    return "\n".join([title, *_table(header, rows)])


def _route(letter: DeadLetter) -> str:
    if letter.task is None and letter.queue is None:
        return "-"
    if letter.task == letter.queue or letter.queue is None:
        return letter.task or "-"
    return f"{letter.task or '-'} / {letter.queue}"


def format_dead_letters(letters: Sequence[DeadLetter], limit: int) -> str:
    """The dead letters, newest first, one line each; the reason last, on one line."""
    if not letters:
        return "no dead letters"
    title = f"{len(letters)} dead letter(s), newest first (at most {limit}):"
    rows = [
        (
            letter.id,
            _moment(letter.received_at),
            _route(letter),
            letter.message_id or "-",
            letter.recipient or "-",
            _moment(letter.republished_at) if letter.republished_at else "no",
            " ".join(letter.reason.split()),
        )
        for letter in letters
    ]
    header = ("ID", "RECEIVED", "TASK / QUEUE", "MESSAGE", "RECIPIENT", "REPUBLISHED", "REASON")
    return "\n".join([title, *_table(header, rows)])
