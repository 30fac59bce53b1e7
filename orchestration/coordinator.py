"""The coordinator: locks a run, asks the interpreter what follows, writes it back.

``decide`` runs inside the transaction that changed the state, after taking the workflow's row
lock: ``start`` (a new run's first dispatch commits with the run), an agent's result (what follows
it commits with the result), and ``advance`` on the coordinator queue (retries that came due, and
whatever the maintenance sweep finds idle). It never waits for anything, and deciding twice, or
for a finished workflow, is harmless. The rules themselves are in ``orchestration/workflow``: the
interpreter walks the run's graph, and each kind of node is a module of its own.

A run's graph is the snapshot its row keeps (read once per run and process, then cached), so a
run in flight keeps its definition across deploys. Every statement here is a prebuilt Core
statement (``storage.statements``): this is the path every step of every workflow takes.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import structlog

from bus.envelope import AgentMessage
from bus.publisher import Bus, Unsent
from orchestration import webhooks
from orchestration.context_budget import counter_for
from orchestration.pricing import micro_to_usd
from orchestration.retry import Backoff
from orchestration.run_store import RunStore
from orchestration.team import Team
from orchestration.workflow.graph import Graph, build_graph
from orchestration.workflow.interpreter import Interpreter
from orchestration.workflow.kinds.step import Rules
from orchestration.workflow.state import ApprovalState, Plan, RunState, StepState
from storage import statements
from storage.executor import Tx, transaction
from storage.models import WorkflowStatus, as_utc, utcnow
from storage.settings import Settings
from workers import tracing

log = structlog.get_logger(__name__)

WEBHOOK_SUBJECT_CHARS = 4000  # of what is to be approved, in an approval's webhook


@dataclass(frozen=True, slots=True)
class Decision:
    """What a decision recorded: the messages to route once it commits, the run when the
    decision ended it, and the approvals it asked for (the webhook's bodies)."""

    messages: list[AgentMessage] = field(default_factory=list)
    ended: RunState | None = None
    requested: list[dict[str, Any]] = field(default_factory=list)


class Coordinator:
    def __init__(self, team: Team, bus: Bus, settings: Settings, backoff: Backoff | None = None):
        self._bus = bus
        self._team = team.name
        self._url = settings.effective_database_url
        self._approval_webhook = settings.approval_webhook_url
        self._rules = Rules(
            team=team,
            backoff=backoff or Backoff(),
            dispatch_timeout_s=settings.dispatch_timeout_s,
            counter=counter_for(settings),
        )
        self._graphs = _Graphs()

    def advance(self, workflow_id: str, delivered: str | None = None) -> None:
        """Decide in a transaction of its own, then route what was decided.

        ``delivered`` is the id of the message that asked for this, stamped as delivered."""
        with structlog.contextvars.bound_contextvars(workflow_id=workflow_id):
            with transaction(self._url) as tx:
                run = lock_workflow(tx, workflow_id)
                if delivered is not None:
                    mark_delivered(tx, delivered)
                decision = self.decide(tx, run) if run is not None else Decision()
            self.after_commit(decision)

    def start(self, tx: Tx, run: RunState, graph: Graph, row: dict[str, Any]) -> Decision:
        """Insert a new run, its first decision already made (its first node entered, the
        steps that makes dispatched), in the caller's transaction. The run keeps ``graph`` as
        JSON; ``row`` holds its other columns. The caller hands what it returns to
        ``after_commit`` once the transaction has committed."""
        store = RunStore(tx, run.id, graph, new=True, facts=row.get("facts"))
        plan = Interpreter(run, graph, store, self._rules, row["created_at"]).start()
        tx.run(statements.INSERT_WORKFLOW, {**row, **_run_values(run), "graph": graph.to_json()})
        store.flush()
        self._graphs.keep(run.id, graph)
        return self._record(tx, run, plan)

    def decide(self, tx: Tx, run: RunState, step: StepState | None = None) -> Decision:
        """Make the decisions that are due for ``run``, whose row the caller has locked
        (``lock_workflow``), inside the caller's transaction: what follows ``step``, whose
        attempt the caller just recorded, or (None) whatever waits. The caller hands what it
        returns to ``after_commit`` once the transaction has committed."""
        if WorkflowStatus(run.status).finished:
            return Decision()
        graph = self._graphs.of(tx, run.id)
        store = RunStore(tx, run.id, graph)
        interpreter = Interpreter(run, graph, store, self._rules, utcnow())
        plan = interpreter.advance() if step is None else interpreter.after_step(store.known(step))
        store.flush()
        if plan.run_changed:
            tx.run(statements.SAVE_WORKFLOW, {"w_id": run.id, **_saved_run_values(run)})
        return self._record(tx, run, plan)

    def after_commit(self, decision: Decision) -> list[Unsent]:
        """Route what a committed decision recorded (returns what the broker did not take); the
        approvals it asked for go to the approval webhook, on a thread of its own; a run it
        ended gets its workflow span."""
        unsent = self._bus.route(decision.messages)
        if self._approval_webhook:
            for body in decision.requested:
                webhooks.post_later(self._approval_webhook, body, "approval.webhook_failed")
        run = decision.ended
        if run is not None and run.created_at is not None and run.finished_at is not None:
            tracing.emit_workflow_span(
                tracing.FinishedRun(
                    id=run.id,
                    name=run.name,
                    status=run.status,
                    cost_usd=micro_to_usd(run.cost_micro),
                    started_at=as_utc(run.created_at),
                    finished_at=as_utc(run.finished_at),
                    error=run.error,
                )
            )
        return unsent

    def _record(self, tx: Tx, run: RunState, plan: Plan) -> Decision:
        for message in plan.messages:
            self._bus.record(tx, message)
        for message, delivered_at in plan.audit:  # on the audit trail, never routed
            self._bus.record(tx, message, delivered_at)
        for event, fields in plan.events:
            log.info(event, **fields)
        ended = WorkflowStatus(run.status).finished and plan.run_changed
        if ended:
            log.info("workflow.finished", workflow_id=run.id, status=run.status)
        requested = [self._requested(run, approval) for approval in plan.requested]
        return Decision(plan.messages, run if ended else None, requested)

    def _requested(self, run: RunState, approval: ApprovalState) -> dict[str, Any]:
        """The approval webhook's body: what is asked for, of which run, by when."""
        subject = approval.subject
        return {
            "event": "approval.requested",
            "team": self._team,
            "run_id": run.id,
            "workflow": run.name,
            "gate": approval.gate,
            "kind": approval.kind,
            "scope": approval.scope,
            "subject": subject[:WEBHOOK_SUBJECT_CHARS],
            "subject_chars": len(subject),
            "subject_hash": approval.subject_hash,
            "requested_at": approval.requested_at.isoformat(),
            "due_at": None if approval.due_at is None else approval.due_at.isoformat(),
            "on_timeout": approval.on_timeout,
        }


class _Graphs:
    """The graphs of the runs this process decided for lately, read once per run: a run's graph
    never changes. A run from before graphs had none: its steps' agents are its sequence."""

    SIZE = 4096

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._kept: OrderedDict[str, Graph] = OrderedDict()

    def keep(self, workflow_id: str, graph: Graph) -> None:
        with self._lock:
            self._kept[workflow_id] = graph
            self._kept.move_to_end(workflow_id)
            while len(self._kept) > self.SIZE:
                self._kept.popitem(last=False)

    def of(self, tx: Tx, workflow_id: str) -> Graph:
        with self._lock:
            found = self._kept.get(workflow_id)
        if found is not None:
            return found
        snapshot = tx.run(statements.WORKFLOW_GRAPH, {"w_id": workflow_id}).scalar()
        if snapshot is not None:
            graph = Graph.from_json(snapshot)
        else:
            agents = [
                row.agent_id for row in tx.run(statements.AGENTS_OF_STEPS, {"w_id": workflow_id})
            ]
            graph = build_graph(agents, f"run {workflow_id}")
        self.keep(workflow_id, graph)
        return graph


def lock_workflow(tx: Tx, workflow_id: str, add_cost: int = 0) -> RunState | None:
    """Lock the workflow row until the transaction ends, and return what a decision needs.

    Every decision about a run is made under this lock, and every change to its steps, node
    runs and frames but one: the record stage updates the step whose attempt it records before
    it takes the lock (so that the lock is held for the decision alone). That cannot deadlock:
    its update is fenced to an attempt still running, and no decision changes a running step.
    ``add_cost`` (micro-dollars) is charged to the workflow in the same statement."""
    row = tx.run(
        statements.LOCK_WORKFLOW,
        {"w_id": workflow_id, "updated_at": utcnow(), "add_cost": add_cost},
    ).one_or_none()
    if row is None:
        log.warning(
            "coordinator.unknown_workflow",
            workflow_id=workflow_id,
            reason="the run is not in this database: its submitter most likely records runs "
            "in another one; give every process the same AGENTYARD_DATABASE_URL and "
            "AGENTYARD_REDIS_URL",
        )
        return None
    return RunState(**row._asdict())


def mark_delivered(tx: Tx, message_id: str) -> None:
    """Stamp a message as taken by its consumer (audit), in the consumer's transaction."""
    tx.run(statements.MARK_DELIVERED, {"w_id": message_id, "delivered_at": utcnow()})


def _saved_run_values(run: RunState) -> dict[str, Any]:
    return {
        "status": run.status,
        "output": run.output,
        "error": run.error,
        "finished_at": run.finished_at,
    }


def _run_values(run: RunState) -> dict[str, Any]:
    return {
        "id": run.id,
        "name": run.name,
        "priority": run.priority,
        "input": run.input,
        "budget_micro": run.budget_micro,
        "deadline_at": run.deadline_at,
        **_saved_run_values(run),
    }
