"""What agentyard's tasks show of themselves outside the worker: ids, never prompts or keys.

Flower, ``celery inspect`` and ``celery events`` see a task through the events its worker sends
and through the worker's answers to inspection. The publisher gives every message an
``argsrepr`` and a ``kwargsrepr`` of ids (``bus.publisher``), and the events carry those. Two
paths would still carry more, and are closed here:

- a worker answers ``inspect reserved`` and ``inspect scheduled`` (Flower's page of a worker)
  with a task's real arguments, the whole envelope; a task whose ``Request`` is
  ``IdsOnlyRequest`` answers with the reprs instead, as ``inspect active --safe`` does;
- a failed task's event carries its exception and traceback, whose text may quote anything (a
  database error quotes its statement's parameters: a prompt, a model's output). Inside
  ``ids_only_on_failure`` an exception is written to the worker's log whole, and the task fails
  with a ``TaskFailed`` that names the task, its id and the type of the error, nothing more.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import structlog
from celery import Task
from celery.exceptions import TaskPredicate
from celery.worker.request import Request

from storage.errors import TaskFailed

log = structlog.get_logger(__name__)


class IdsOnlyRequest(Request):
    """A worker's request that describes its task by ``argsrepr`` and ``kwargsrepr`` (ids)
    wherever Celery would show the arguments themselves."""

    def info(self, safe: bool = False) -> dict[str, Any]:
        return dict(super().info(safe=True))


@contextmanager
def ids_only_on_failure(task: Task) -> Iterator[None]:
    """Run ``task``'s body; an exception it raises goes to the worker's log (event
    ``task.failed``, with the task's name and id) and the task fails with ``TaskFailed``, whose
    message and traceback hold ids only. Celery's own signals (retry, ignore, reject) pass."""
    try:
        yield
    except TaskPredicate:
        raise
    except Exception as exc:
        task_id = task.request.id
        log.exception("task.failed", task=task.name, task_id=task_id, error=type(exc).__name__)
        raise TaskFailed(
            f"task {task.name} [{task_id}] failed with {type(exc).__name__}; the worker's log "
            f"has the details (event task.failed, task_id {task_id})"
        ) from None
