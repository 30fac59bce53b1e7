"""Publishing: the message goes into the audit table first, then onto each recipient's queue.

``record`` adds the audit row to the caller's transaction (so a step's result and the request it
leads to commit together); ``route`` hands recorded messages to the broker after that commit.
A crash between the two leaves a recorded message that no queue holds. It is not re-sent from
this table: the maintenance sweep reconciles from the workflow and step rows, which say what
must happen next, and consumers are idempotent, so a duplicate is harmless and a loss is not
possible.
"""

from __future__ import annotations

from collections.abc import Iterable

import structlog
from celery import Celery

from bus.envelope import AgentMessage
from bus.priorities import to_broker
from bus.routing import route_for
from storage import statements
from storage.executor import Tx, transaction

log = structlog.get_logger(__name__)


def task_id_for(message: AgentMessage, recipient: str) -> str:
    """The Celery task id of ``message``'s copy for ``recipient``: the broker's view keys on it."""
    return message.id if len(message.to) == 1 else f"{message.id}:{recipient}"


class Bus:
    def __init__(self, app: Celery, database_url: str) -> None:
        self._app = app
        self._database_url = database_url

    def record(self, tx: Tx, message: AgentMessage) -> None:
        """Add ``message`` to the audit table inside the caller's transaction."""
        first = route_for(message.to[0])
        tx.run(
            statements.INSERT_MESSAGE,
            dict(
                id=message.id,
                workflow_id=message.workflow_id,
                step_id=message.step_id,
                type=message.type.value,
                sender=message.sender,
                recipients=list(message.to),
                task=first.task,
                queue=first.queue,
                priority=message.priority,
                payload=message.encode(),
                created_at=message.timestamp,
                delivered_at=None,
                attempt=message.attempt,
                requires_ack=message.requires_ack,
                ack_timeout_s=message.ack_timeout_s if message.requires_ack else None,
            ),
        )

    def route(self, messages: Iterable[AgentMessage]) -> None:
        """Send already-recorded messages to their queues. A broker failure is logged, not
        raised: the work is on record, and the sweep picks it up."""
        for message in messages:
            try:
                self._send(message)
            except Exception as exc:  # any broker failure: the sweep recovers the work
                log.warning(
                    "bus.route_failed",
                    message_id=message.id,
                    error=str(exc),
                    next="the maintenance sweep reconciles it",
                )

    def _send(self, message: AgentMessage) -> None:
        encoded = message.encode()
        # What Flower and `celery inspect` show of the task: ids, never a prompt or a key.
        shown = repr(
            {"message": message.id, "workflow": message.workflow_id, "step": message.step_id}
        )
        for recipient in message.to:
            route = route_for(recipient)
            self._app.send_task(
                route.task,
                kwargs={"envelope": encoded},
                queue=route.queue,
                priority=to_broker(message.priority),
                task_id=task_id_for(message, recipient),
                argsrepr="()",
                kwargsrepr=shown,
            )

    def publish(self, message: AgentMessage) -> None:
        """Record and route one message on its own."""
        with transaction(self._database_url) as tx:
            self.record(tx, message)
        self.route([message])
