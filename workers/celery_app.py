"""The Celery app and every setting it runs with.

Durability first: acks late (a message leaves the queue only when its task is done), reject on
worker lost (a killed worker gives its message back), prefetch 1 (a worker holds one message per
slot, so priorities mean something), JSON only. Results live in PostgreSQL, not in a result
backend. The broker's own settings (``bus.brokers``: Redis's priority steps and key prefix,
RabbitMQ's x-max-priority and publisher confirms) are applied here and nowhere else, so every
producer, worker and Flower agrees on them.
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from kombu import Queue

from bus.brokers import broker_for
from bus.routing import COORDINATOR_QUEUE
from storage.errors import ConfigurationError
from storage.settings import Settings
from workers import celery_programs  # noqa: F401  (takes Celery's logging set-up over)


def transport_options(settings: Settings) -> dict[str, Any]:
    """The broker's transport options (on Redis: priority steps, separator, key prefix)."""
    options: dict[str, Any] = broker_for(settings.effective_broker_url).celery_settings(settings)[
        "broker_transport_options"
    ]
    return options


def make_celery(name: str, settings: Settings) -> Celery:
    broker = settings.effective_broker_url
    if not broker:
        raise ConfigurationError(
            "no broker configured: set AGENTYARD_REDIS_URL (or AGENTYARD_BROKER_URL), "
            "or run `agentyard demo` which starts an embedded Redis"
        )
    app = Celery(name, broker=broker, set_as_current=False)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        event_serializer="json",
        task_ignore_result=True,
        result_backend=None,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_acks_on_failure_or_timeout=True,
        worker_prefetch_multiplier=1,
        broker_connection_retry_on_startup=True,
        task_time_limit=settings.task_time_limit_s,
        worker_send_task_events=True,
        task_send_sent_event=True,
        task_default_queue=COORDINATOR_QUEUE,
        task_queues=[Queue(COORDINATOR_QUEUE)],
        task_create_missing_queues=True,
        # Logging is agentyard's (workers/logging.py): Celery's records are rendered as its lines,
        # handlers already on the root logger stay, and in JSON a stray print is a WARNING line.
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=True,
        worker_redirect_stdouts_level="WARNING",
        broker_pool_limit=64,
        # Flower and `celery inspect` show task arguments: ours are ids, never prompts or keys.
        task_protocol=2,
    )
    # The broker's own: transport options, and on RabbitMQ x-max-priority on every queue.
    app.conf.update(broker_for(broker).celery_settings(settings))
    return app
