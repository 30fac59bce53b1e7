"""The acknowledgement sweeper (a periodic task on beat): what is not acknowledged in time is
published again, escalated, and finally dead-lettered.

Each sweep claims the overdue (message, recipient) entries from Redis (``AckStore.overdue``: a
claim moves the deadline on, so two sweepers never take the same entry, and one whose sweeper
died comes due again). For each:
- before its last attempt: published again to that recipient as ``attempt`` + 1, escalated
  (priority 8 or more goes to 9, ``priorities.escalated``), with a fresh deadline; the audit row
  keeps the highest attempt and priority;
- after ``max_attempts``: given up in Redis (unless an acknowledgement came first) and
  dead-lettered with the reason, naming the message and the recipient.

Redis is not the truth. When it has lost its data (its ``loaded`` marker is gone), the sweep first
loads again, from PostgreSQL, every acknowledgement still awaited: a message that asked for one,
of the last week, with no ``message_acks`` row and no dead letter for that recipient.
"""

from __future__ import annotations

from datetime import timedelta

import structlog
from sqlalchemy import and_, exists
from sqlmodel import col, select

from bus.dead_letters import DeadLetters
from bus.envelope import AgentMessage
from bus.priorities import escalated
from bus.publisher import Bus
from bus.routing import route_for
from storage.ack_store import AckStore, Overdue
from storage.db import session_scope
from storage.models import DeadLetterRow, MessageAckRow, MessageRow, utcnow

log = structlog.get_logger(__name__)

BATCH = 200
CLAIM_S = 30.0
# How far back a reload looks: past it, every message was acknowledged or dead-lettered long ago
# (ack_timeout_s is at most a day, and attempts are few).
RELOAD_WINDOW = timedelta(
    days=7
)  # an entry a sweeper claimed and did not finish comes due again after this


class AckSweeper:
    def __init__(
        self,
        bus: Bus,
        acks: AckStore,
        dead_letters: DeadLetters,
        database_url: str,
        max_attempts: int,
    ) -> None:
        self._bus = bus
        self._acks = acks
        self._dead_letters = dead_letters
        self._url = database_url
        self._max_attempts = max_attempts

    def sweep(self) -> dict[str, int]:
        counts = {"reloaded": 0, "republished": 0, "escalated": 0, "dead_lettered": 0}
        if not self._acks.loaded():
            counts["reloaded"] = self.reload()
        claimed = self._acks.overdue(limit=BATCH, claim_s=CLAIM_S)
        if claimed:
            rows = self._messages({o.message_id for o in claimed})
            for overdue in claimed:
                row = rows.get(overdue.message_id)
                if row is None:
                    # Awaited in Redis but never recorded: its publisher failed before the commit.
                    self._acks.give_up(overdue.message_id, overdue.recipient)
                    log.warning("bus.ack_for_unrecorded_message", message_id=overdue.message_id)
                elif overdue.attempt >= self._max_attempts:
                    counts["dead_lettered"] += self._give_up(row, overdue)
                elif self._publish_again(row, overdue):
                    counts["republished"] += 1
                    counts["escalated"] += escalated(row.priority) != row.priority
        # At INFO only when it did something: an idle coordinator sweeps every second or so.
        (log.info if any(counts.values()) else log.debug)("bus.acks_swept", **counts)
        return counts

    def _publish_again(self, row: MessageRow, overdue: Overdue) -> bool:
        """Publish one recipient's copy again as the next attempt, escalated; False if it was
        acknowledged meanwhile."""
        priority = escalated(row.priority)
        log.warning(
            "bus.ack_overdue",
            message_id=row.id,
            recipient=overdue.recipient,
            attempt=overdue.attempt,
            next_priority=priority,
        )
        return self._bus.publish_again(
            AgentMessage.decode(row.payload), overdue.recipient, overdue.attempt + 1, priority
        )

    def _give_up(self, row: MessageRow, overdue: Overdue) -> int:
        if not self._acks.give_up(row.id, overdue.recipient):
            return 0  # an acknowledgement came first
        route = route_for(overdue.recipient)
        timeout = row.ack_timeout_s
        self._dead_letters.record(
            task=route.task,
            queue=route.queue,
            reason=(
                f"not acknowledged by {overdue.recipient!r} within {timeout}s, "
                f"{overdue.attempt} times (AGENTYARD_ACK_MAX_ATTEMPTS={self._max_attempts})"
            ),
            body=AgentMessage.decode(row.payload).model_dump_json(),
            message_id=row.id,
            recipient=overdue.recipient,
        )
        return 1

    def reload(self) -> int:
        """Await again, from PostgreSQL, what Redis forgot; returns how many entries."""
        since = utcnow() - RELOAD_WINDOW
        with session_scope(self._url) as session:
            rows = session.exec(
                select(MessageRow).where(
                    col(MessageRow.requires_ack).is_(True),
                    col(MessageRow.created_at) > since,
                )
            ).all()
            acked = set(
                session.exec(
                    select(MessageAckRow.message_id, MessageAckRow.recipient).where(
                        exists().where(
                            and_(
                                col(MessageRow.id) == col(MessageAckRow.message_id),
                                col(MessageRow.requires_ack).is_(True),
                                col(MessageRow.created_at) > since,
                            )
                        )
                    )
                ).all()
            )
            dead = set(
                session.exec(
                    select(DeadLetterRow.message_id, DeadLetterRow.recipient).where(
                        col(DeadLetterRow.message_id).is_not(None),
                        col(DeadLetterRow.received_at) > since,
                    )
                ).all()
            )
        awaited = 0
        for row in rows:
            owed = tuple(
                r for r in row.recipients if (row.id, r) not in acked and (row.id, r) not in dead
            )
            if owed:
                awaited += self._acks.expect(
                    row.id, owed, row.attempt, row.ack_timeout_s or 30.0, keep_waiting=True
                )
        self._acks.mark_loaded()
        if awaited:
            log.warning("bus.acks_reloaded", awaited=awaited)
        return awaited

    def _messages(self, ids: set[str]) -> dict[str, MessageRow]:
        with session_scope(self._url) as session:
            rows = session.exec(select(MessageRow).where(col(MessageRow.id).in_(ids))).all()
            for row in rows:
                session.expunge(row)
            return {row.id: row for row in rows}
