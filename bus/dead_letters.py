"""Dead letters: messages no consumer can act on are set aside with the reason, never retried.

A message that is not JSON, is not an agentyard message, or names a task no worker knows would
otherwise be dropped with a log line (or, worse, redelivered forever). So would a bus message
for an agent with no handler, or one whose handler failed. Each becomes a row of
``dead_letters`` (its task, queue, the reason, and its body cut to a few kilobytes) and an
error-level ``message.dead_lettered`` log event; the worker acknowledges it and carries on.

A message that asked for an acknowledgement and got none after its last attempt is dead-lettered
by the acknowledgement sweeper, naming the message and the recipient. Those can be published
again by hand (``agentyard deadletters --republish ID``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import structlog
from sqlmodel import col, select

from storage.db import migrate, session_scope
from storage.errors import InvalidRequest
from storage.models import DeadLetterRow, utcnow

log = structlog.get_logger(__name__)

BODY_KEPT = 4000  # characters of the body kept with the reason


@dataclass(frozen=True, slots=True)
class DeadLetter:
    id: str
    received_at: datetime
    task: str | None
    queue: str | None
    reason: str
    message_id: str | None
    recipient: str | None
    republished_at: datetime | None


class DeadLetters:
    def __init__(self, database_url: str) -> None:
        self._url = database_url

    def record(
        self,
        *,
        task: str | None,
        queue: str | None,
        reason: str,
        body: object,
        message_id: str | None = None,
        recipient: str | None = None,
    ) -> None:
        if isinstance(body, bytes):
            text = body.decode(errors="replace")
        else:
            text = body if isinstance(body, str) else repr(body)
        log.error(
            "message.dead_lettered",
            task=task,
            queue=queue,
            reason=reason,
            message_id=message_id,
            recipient=recipient,
        )
        try:
            migrate(self._url)  # a poison message may be the first thing a worker ever sees
            with session_scope(self._url) as session:
                session.add(
                    DeadLetterRow(
                        task=task,
                        queue=queue,
                        reason=reason[:2000],
                        body=text[:BODY_KEPT],
                        message_id=message_id,
                        recipient=recipient,
                        received_at=utcnow(),
                    )
                )
        except Exception as exc:  # the worker must go on: the log line above has it
            log.error("message.dead_letter_not_recorded", error=str(exc))

    def latest(self, limit: int = 50) -> list[DeadLetter]:
        """The most recent dead letters, newest first."""
        with session_scope(self._url) as session:
            rows = session.exec(
                select(DeadLetterRow).order_by(col(DeadLetterRow.received_at).desc()).limit(limit)
            ).all()
            return [_view(row) for row in rows]

    def take_for_republishing(self, dead_letter_id: str) -> DeadLetter:
        """Mark one dead letter as published again and return it; refuses one that names no
        message (it was never an agentyard message) or was published again already."""
        with session_scope(self._url) as session:
            row = session.get(DeadLetterRow, dead_letter_id, with_for_update=True)
            if row is None:
                raise InvalidRequest(
                    f"no dead letter {dead_letter_id!r}; `agentyard deadletters` lists them"
                )
            if row.message_id is None or row.recipient is None:
                raise InvalidRequest(
                    f"dead letter {dead_letter_id!r} is not an agentyard message on record "
                    f"({row.reason}); it cannot be published again"
                )
            if row.republished_at is not None:
                raise InvalidRequest(
                    f"dead letter {dead_letter_id!r} was published again at "
                    f"{row.republished_at:%Y-%m-%d %H:%M:%S}"
                )
            row.republished_at = utcnow()
            session.add(row)
            session.flush()
            return _view(row)


def _view(row: DeadLetterRow) -> DeadLetter:
    return DeadLetter(
        id=row.id,
        received_at=row.received_at,
        task=row.task,
        queue=row.queue,
        reason=row.reason,
        message_id=row.message_id,
        recipient=row.recipient,
        republished_at=row.republished_at,
    )
