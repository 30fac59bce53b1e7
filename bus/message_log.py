"""A run's messages as the audit tables record them: who sent what to whom, in order, and where
each acknowledgement stands (``agentyard messages RUN_ID``).

Read-only: ``messages`` gives the messages, ``message_acks`` the acknowledgements, and
``dead_letters`` the recipients given up on. A recipient of a message that asked for an
acknowledgement has acknowledged it (and which attempt), was dead-lettered (a dead letter for the
message and recipient that was not published again since), or is still awaited.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlmodel import col, select

from storage.db import session_scope
from storage.errors import RunNotFound
from storage.models import DeadLetterRow, MessageAckRow, MessageRow, WorkflowRow, as_utc


class AckState(StrEnum):
    ACKNOWLEDGED = "acknowledged"
    DEAD_LETTERED = "dead-lettered"
    WAITING = "waiting"


@dataclass(frozen=True, slots=True)
class RecipientAck:
    """Where one recipient's acknowledgement stands; ``attempt`` is the attempt acknowledged
    (None unless acknowledged)."""

    recipient: str
    state: AckState
    attempt: int | None = None


@dataclass(frozen=True, slots=True)
class LoggedMessage:
    """One message of a run. ``acks`` is empty when the message asked for no acknowledgement;
    otherwise one entry per recipient, in the order of ``recipients``."""

    id: str
    created_at: datetime
    type: str
    sender: str
    recipients: tuple[str, ...]
    priority: int
    attempt: int
    requires_ack: bool
    delivered_at: datetime | None
    step_id: str | None
    acks: tuple[RecipientAck, ...] = ()

    @property
    def delivered(self) -> bool:
        return self.delivered_at is not None

    @property
    def acknowledged(self) -> int:
        """How many recipients acknowledged it."""
        return sum(a.state is AckState.ACKNOWLEDGED for a in self.acks)


def messages_of(database_url: str, workflow_id: str) -> list[LoggedMessage]:
    """The messages of run ``workflow_id``, oldest first (ties by id). Raises ``RunNotFound``
    when no such run is in the database."""
    with session_scope(database_url) as session:
        if session.get(WorkflowRow, workflow_id) is None:
            raise RunNotFound(f"no workflow run with id {workflow_id!r} in this database")
        rows = session.exec(
            select(MessageRow)
            .where(col(MessageRow.workflow_id) == workflow_id)
            .order_by(col(MessageRow.created_at), col(MessageRow.id))
        ).all()
        of_run = select(MessageRow.id).where(col(MessageRow.workflow_id) == workflow_id)
        acked = {
            (message_id, recipient): attempt
            for message_id, recipient, attempt in session.exec(
                select(
                    MessageAckRow.message_id, MessageAckRow.recipient, MessageAckRow.attempt
                ).where(col(MessageAckRow.message_id).in_(of_run))
            ).all()
        }
        # A dead letter that was published again no longer stands: the recipient is awaited.
        dead = set(
            session.exec(
                select(DeadLetterRow.message_id, DeadLetterRow.recipient).where(
                    col(DeadLetterRow.message_id).in_(of_run),
                    col(DeadLetterRow.republished_at).is_(None),
                )
            ).all()
        )
        return [_logged(row, acked, dead) for row in rows]


def _logged(
    row: MessageRow,
    acked: dict[tuple[str, str], int],
    dead: set[tuple[str | None, str | None]],
) -> LoggedMessage:
    recipients = tuple(row.recipients)
    acks: tuple[RecipientAck, ...] = ()
    if row.requires_ack:
        acks = tuple(_ack_of(row.id, r, acked, dead) for r in recipients)
    return LoggedMessage(
        id=row.id,
        created_at=as_utc(row.created_at),
        type=row.type,
        sender=row.sender,
        recipients=recipients,
        priority=row.priority,
        attempt=row.attempt,
        requires_ack=row.requires_ack,
        delivered_at=as_utc(row.delivered_at),
        step_id=row.step_id,
        acks=acks,
    )


def _ack_of(
    message_id: str,
    recipient: str,
    acked: dict[tuple[str, str], int],
    dead: set[tuple[str | None, str | None]],
) -> RecipientAck:
    # An acknowledgement wins: the recipient did process the message.
    if (message_id, recipient) in acked:
        return RecipientAck(recipient, AckState.ACKNOWLEDGED, acked[(message_id, recipient)])
    if (message_id, recipient) in dead:
        return RecipientAck(recipient, AckState.DEAD_LETTERED)
    return RecipientAck(recipient, AckState.WAITING)
