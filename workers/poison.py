"""Poison messages: every way a message can fail to reach agentyard's logic ends in a dead letter.

- a task agentyard knows, whose arguments are not an agentyard message: the task itself;
- a task no worker has registered: Celery's ``task_unknown`` signal;
- a message that is not a task, or whose content type is not allowed (JSON only): the
  ``task_rejected`` signal;
- a body that cannot be decoded: ``DeadLetteringConsumer``, the worker's consumer, which Celery
  would otherwise only log before acknowledging.

Each goes to the sink the Orchestrator registered for its app (``register``); Celery then
acknowledges or rejects the message without requeueing it, so nothing loops.
"""

from __future__ import annotations

import weakref
from typing import Any, Protocol

from celery import Celery, signals
from celery.worker.consumer import Consumer

CONSUMER = "workers.poison:DeadLetteringConsumer"


class Sink(Protocol):
    def record(self, *, task: str | None, queue: str | None, reason: str, body: object) -> None: ...


_sinks: weakref.WeakKeyDictionary[Celery, Sink] = weakref.WeakKeyDictionary()


def register(app: Celery, sink: Sink) -> None:
    """Send the poison messages of ``app``'s workers to ``sink``."""
    _sinks[app] = sink
    app.conf.worker_consumer = CONSUMER


def sink_for(app: Celery) -> Sink | None:
    return _sinks.get(app)


def _report(consumer: Any, message: Any, reason: str, task: str | None = None) -> None:
    sink = sink_for(getattr(consumer, "app", None)) if consumer is not None else None
    if sink is None:
        return
    headers = getattr(message, "headers", None) or {}
    delivery = getattr(message, "delivery_info", None) or {}
    sink.record(
        task=task or headers.get("task"),
        queue=delivery.get("routing_key") or delivery.get("exchange"),
        reason=reason,
        body=getattr(message, "body", b""),
    )


class DeadLetteringConsumer(Consumer):
    def on_decode_error(self, message: Any, exc: Exception) -> None:
        _report(self, message, f"the body cannot be decoded: {exc}")
        super().on_decode_error(message, exc)


@signals.task_unknown.connect
def _unknown_task(
    sender: Any = None, message: Any = None, name: str | None = None, **_: Any
) -> None:
    _report(sender, message, f"no worker knows task {name!r}", task=name)


@signals.task_rejected.connect
def _rejected(
    sender: Any = None, message: Any = None, exc: Exception | None = None, **_: Any
) -> None:
    reason = f"not a task message agentyard accepts: {exc}" if exc else "not a task message"
    _report(sender, message, reason)
