"""Dead letters: messages no consumer can act on are set aside with the reason, never retried.

A message that is not JSON, is not an agentyard message, or names a task no worker knows would
otherwise be dropped with a log line (or, worse, redelivered forever). It becomes a row of
``dead_letters`` (its task, queue, the reason, and its body cut to a few kilobytes) and an
error-level ``message.dead_lettered`` log event; the worker acknowledges it and carries on.
"""

from __future__ import annotations

import structlog

from storage.db import migrate, session_scope
from storage.models import DeadLetterRow, utcnow

log = structlog.get_logger(__name__)

BODY_KEPT = 4000  # characters of the body kept with the reason


class DeadLetters:
    def __init__(self, database_url: str) -> None:
        self._url = database_url

    def record(self, *, task: str | None, queue: str | None, reason: str, body: object) -> None:
        text = body.decode(errors="replace") if isinstance(body, bytes) else repr(body)
        log.error("message.dead_lettered", task=task, queue=queue, reason=reason)
        try:
            migrate(self._url)  # a poison message may be the first thing a worker ever sees
            with session_scope(self._url) as session:
                session.add(
                    DeadLetterRow(
                        task=task,
                        queue=queue,
                        reason=reason[:2000],
                        body=text[:BODY_KEPT],
                        received_at=utcnow(),
                    )
                )
        except Exception as exc:  # the worker must go on: the log line above has it
            log.error("message.dead_letter_not_recorded", error=str(exc))
