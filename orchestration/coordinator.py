"""The coordinator: reads a workflow's rows, asks the planner what is due, writes it back.

``decide`` runs inside the transaction that changed the state, after taking the workflow's row
lock: ``start`` (a new run's first dispatch commits with the run), an agent's result (the next
dispatch commits with the result), and ``advance`` on the coordinator queue (retries that came
due, and whatever the maintenance sweep finds idle). It never waits for anything, and deciding
twice, or for a finished workflow, is harmless. The rules themselves are in ``planner.py``.

Every statement here is a prebuilt Core statement (``storage.statements``): this is the path
every step of every workflow takes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import structlog

from bus.envelope import AgentMessage
from bus.publisher import Bus
from orchestration.planner import Plan, Rules, RunState, StepState, plan_sequence
from orchestration.pricing import micro_to_usd
from orchestration.retry import Backoff
from orchestration.team import Team
from orchestration.workflow.graph import Graph, StepNode
from storage import statements
from storage.errors import ConfigurationError
from storage.executor import Tx, transaction
from storage.models import WorkflowStatus, as_utc, new_id, utcnow
from storage.settings import Settings
from workers import tracing

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Decision:
    """What a decision recorded: the messages to route once it commits, and the run when the
    decision ended it."""

    messages: list[AgentMessage] = field(default_factory=list)
    ended: RunState | None = None


class Coordinator:
    def __init__(self, team: Team, bus: Bus, settings: Settings, backoff: Backoff | None = None):
        self._bus = bus
        self._url = settings.effective_database_url
        self._rules = Rules(
            team=team,
            backoff=backoff or Backoff(),
            dispatch_timeout_s=settings.dispatch_timeout_s,
        )

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

    def start(self, tx: Tx, run: RunState, graph: Graph, row: dict[str, Any]) -> list[AgentMessage]:
        """Insert a new run with one step per node of its graph (a sequence, for now), its first
        decision already made (the first step dispatched), in the caller's transaction. The run
        keeps ``graph`` as JSON; ``row`` holds its other columns. Returns the messages to route
        after the commit."""
        if not graph.is_sequence:
            raise ConfigurationError(
                f"workflow {run.name!r} is not a sequence; this version runs sequences only"
            )
        nodes = [node for node in graph.nodes if isinstance(node, StepNode)]
        ids = [new_id() for _ in nodes]
        steps = [
            StepState(
                id=ids[position],
                position=position,
                agent_id=node.agent,
                parent_step_id=ids[position - 1] if position else None,
                node=node.name,
            )
            for position, node in enumerate(nodes)
        ]
        row = {**row, "graph": graph.to_json()}
        now = row["created_at"]
        plan = plan_sequence(run, steps, now, self._rules)
        tx.run(statements.INSERT_WORKFLOW, {**row, **_run_values(run)})
        tx.run(
            statements.INSERT_STEP,
            [{"workflow_id": run.id, **_step_values(step)} for step in steps],
        )
        return self._record(tx, run, plan).messages

    def decide(self, tx: Tx, run: RunState) -> Decision:
        """Make the decisions that are due for ``run``, whose row the caller has locked
        (``lock_workflow``), inside the caller's transaction; the caller hands what it returns
        to ``after_commit`` once the transaction has committed."""
        if WorkflowStatus(run.status).finished:
            return Decision()
        steps = [
            StepState(**row._asdict())
            for row in tx.run(statements.STEPS_OF_WORKFLOW, {"w_id": run.id})
        ]
        plan = plan_sequence(run, steps, utcnow(), self._rules)
        for step in plan.steps:
            tx.run(statements.SAVE_STEP, {"w_id": step.id, **_planned_values(step)})
        if plan.run_changed:
            tx.run(statements.SAVE_WORKFLOW, {"w_id": run.id, **_saved_run_values(run)})
        return self._record(tx, run, plan)

    def after_commit(self, decision: Decision) -> None:
        """Route what a committed decision recorded; a run it ended gets its workflow span."""
        self._bus.route(decision.messages)
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

    def _record(self, tx: Tx, run: RunState, plan: Plan) -> Decision:
        for message in plan.messages:
            self._bus.record(tx, message)
        for event, fields in plan.events:
            log.info(event, **fields)
        ended = WorkflowStatus(run.status).finished and plan.run_changed
        if ended:
            log.info("workflow.finished", workflow_id=run.id, status=run.status)
        return Decision(plan.messages, run if ended else None)


def lock_workflow(tx: Tx, workflow_id: str, add_cost: int = 0) -> RunState | None:
    """Lock the workflow row until the transaction ends, and return what the planner needs.

    Every transaction that changes a workflow's steps under the coordinator takes this lock
    first, so locks are always taken in the same order: workflow, then steps. ``add_cost``
    (micro-dollars) is charged to the workflow in the same statement."""
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


def _planned_values(step: StepState) -> dict[str, Any]:
    return {name: getattr(step, name) for name in statements.PLANNED_STEP_COLUMNS}


def _step_values(step: StepState) -> dict[str, Any]:
    return {name: getattr(step, name) for name in statements.STEP_STATE_COLUMNS}


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
