"""Requests for steps this worker's database has never heard of.

A claim that finds nothing is normally a redelivery (the attempt was claimed, finished or
superseded) and is skipped. But when the step itself is not in the database, the request came
from somewhere the worker cannot see: most often a submitter whose settings name another
database than the workers' (a shell with ``AGENTYARD_REDIS_URL`` but not
``AGENTYARD_DATABASE_URL``). Skipping it silently would leave that run waiting forever; it is
dead-lettered instead, with a reason that says what to check.
"""

from __future__ import annotations

from sqlmodel import select

from bus.dead_letters import DeadLetters
from bus.envelope import AgentMessage
from bus.routing import route_for
from storage.db import session_scope
from storage.models import StepRow
from storage.url_checks import without_password


class StrayRequests:
    def __init__(self, database_url: str, dead_letters: DeadLetters) -> None:
        self._url = database_url
        self._dead_letters = dead_letters

    def dead_letter_if_unknown(self, message: AgentMessage, step_id: str, recipient: str) -> bool:
        """Dead-letter ``message`` if its step is not in the database; True if it was."""
        with session_scope(self._url) as session:
            if session.exec(select(StepRow.id).where(StepRow.id == step_id)).first() is not None:
                return False
        route = route_for(recipient)
        self._dead_letters.record(
            task=route.task,
            queue=route.queue,
            reason=(
                f"step {step_id} of run {message.workflow_id} is not in this worker's database "
                f"({without_password(self._url)}): the process that submitted the run most "
                "likely records runs in another database. Give the submitter and every worker "
                "the same AGENTYARD_DATABASE_URL and AGENTYARD_REDIS_URL, then submit the run "
                "again"
            ),
            body=message.model_dump_json(),
            message_id=message.id,
            recipient=recipient,
        )
        return True
