"""Publishing: the message goes into the audit table first, then onto each recipient's queue.

``record`` adds the audit row to the caller's transaction (so a step's result and the message
announcing it commit together); ``route`` hands it to the broker afterwards and marks it routed.
A crash between the two leaves an unrouted row, which the maintenance sweep routes again:
consumers are idempotent, so routing twice is harmless and routing never is impossible.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

import structlog
from celery import Celery
from sqlalchemy import update
from sqlmodel import Session, col, select

from bus.envelope import AgentMessage
from bus.priorities import to_broker
from bus.routing import route_for
from storage.db import session_scope
from storage.models import MessageRow, utcnow

log = structlog.get_logger(__name__)


def task_id_for(message: AgentMessage, recipient: str) -> str:
    """The Celery task id of ``message``'s copy for ``recipient``: the broker's view keys on it."""
    return message.id if len(message.to) == 1 else f"{message.id}:{recipient}"


class Bus:
    def __init__(self, app: Celery, database_url: str) -> None:
        self._app = app
        self._database_url = database_url

    def record(self, session: Session, message: AgentMessage) -> None:
        """Add ``message`` to the audit table inside the caller's transaction."""
        first = route_for(message.to[0])
        session.add(
            MessageRow(
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
            )
        )

    def route(self, messages: Iterable[AgentMessage]) -> None:
        """Send already-recorded messages to their queues, then mark them routed."""
        routed = []
        for message in messages:
            try:
                self._send(message)
            except Exception as exc:
                log.warning(
                    "bus.route_failed",
                    message_id=message.id,
                    error=str(exc),
                    next="the maintenance sweep routes it again",
                )
                continue
            routed.append(message.id)
        if routed:
            with session_scope(self._database_url) as session:
                session.exec(
                    update(MessageRow)
                    .where(col(MessageRow.id).in_(routed))
                    .values(routed_at=utcnow())
                )

    def _send(self, message: AgentMessage) -> None:
        for recipient in message.to:
            route = route_for(recipient)
            self._app.send_task(
                route.task,
                kwargs={"envelope": message.encode()},
                queue=route.queue,
                priority=to_broker(message.priority),
                task_id=task_id_for(message, recipient),
            )

    def publish(self, message: AgentMessage) -> None:
        """Record and route one message on its own."""
        with session_scope(self._database_url) as session:
            self.record(session, message)
        self.route([message])

    def route_stranded(self, older_than_s: float, limit: int = 500) -> int:
        """Route messages a crash left recorded but unrouted. Returns how many."""
        cutoff: datetime = utcnow() - timedelta(seconds=older_than_s)
        with session_scope(self._database_url) as session:
            rows = session.exec(
                select(MessageRow)
                .where(col(MessageRow.routed_at).is_(None), col(MessageRow.created_at) < cutoff)
                .order_by(col(MessageRow.created_at))
                .limit(limit)
            ).all()
        messages = [AgentMessage.decode(row.payload) for row in rows]
        if messages:
            log.warning("bus.routing_stranded_messages", count=len(messages))
            self.route(messages)
        return len(messages)
