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
from typing import TYPE_CHECKING

import structlog
from sqlmodel import col, select

from bus.envelope import AgentMessage
from bus.publisher import NO_REDIS
from storage.db import migrate, session_scope
from storage.errors import ConfigurationError, DeadLetterNotFound, InvalidRequest, MessageNotFound
from storage.models import DeadLetterRow, MessageRow, utcnow

if TYPE_CHECKING:
    from bus.publisher import Bus

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
                raise DeadLetterNotFound(
                    f"no dead letter {dead_letter_id!r} in this database; `agentyard "
                    "deadletters` lists them"
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


@dataclass(frozen=True, slots=True)
class Republished:
    """What ``republish`` did: the message's copy for ``recipient`` published again as
    ``attempt`` at ``priority``; ``sent`` is False when the recipient had acknowledged it
    meanwhile (nothing was sent)."""

    dead_letter_id: str
    message_id: str
    recipient: str
    attempt: int
    priority: int
    sent: bool


def republish(bus: Bus, database_url: str, dead_letter_id: str) -> Republished:
    """Publish the message a dead letter names again, to the recipient it names, as the next
    attempt (the audit row's attempt + 1) at the audit row's priority, and mark the dead letter
    published again. Refuses (``InvalidRequest``) a dead letter that does not exist, names no
    message, names a message not in the audit table, or was published again already."""
    row = _recorded_message(database_url, dead_letter_id)
    if row is not None and row.requires_ack and bus.acks is None:
        # Checked before the dead letter is taken: publishing would fail half way.
        raise ConfigurationError(
            NO_REDIS.format(what="publishing again a message that requires an acknowledgement")
        )
    recipient = DeadLetters(database_url).take_for_republishing(dead_letter_id).recipient
    if row is None or recipient is None:  # it was taken, so it names a message: only a race
        _release(database_url, dead_letter_id)
        raise InvalidRequest(f"dead letter {dead_letter_id!r} changed meanwhile; try again")
    attempt = row.attempt + 1
    try:
        sent = bus.publish_again(
            AgentMessage.decode(row.payload), recipient, attempt=attempt, priority=row.priority
        )
    except Exception:
        _release(database_url, dead_letter_id)  # nothing was sent: it can be tried again
        raise
    log.info(
        "message.republished",
        dead_letter_id=dead_letter_id,
        message_id=row.id,
        recipient=recipient,
        attempt=attempt,
        sent=sent,
    )
    return Republished(dead_letter_id, row.id, recipient, attempt, row.priority, sent)


def _recorded_message(database_url: str, dead_letter_id: str) -> MessageRow | None:
    """The audit row of the message a dead letter names (None: no such dead letter, or it names
    no message; ``take_for_republishing`` says which)."""
    with session_scope(database_url) as session:
        letter = session.get(DeadLetterRow, dead_letter_id)
        if letter is None or letter.message_id is None:
            return None
        row = session.get(MessageRow, letter.message_id)
        if row is None:
            raise MessageNotFound(
                f"dead letter {dead_letter_id!r} names message {letter.message_id!r}, which is "
                "not in the audit table; it cannot be published again"
            )
        session.expunge(row)
        return row


def _release(database_url: str, dead_letter_id: str) -> None:
    with session_scope(database_url) as session:
        row = session.get(DeadLetterRow, dead_letter_id)
        if row is not None:
            row.republished_at = None
            session.add(row)
