"""The brokers a team's queues can live on, Redis and RabbitMQ, and what differs between them.

The shared state (spend caps, breakers, acknowledgements, leases) is in Redis whichever broker
carries the queues; ``AGENTYARD_BROKER_URL`` chooses only where the messages wait. Everything
else (the envelope, acks late, claims, leases, the sweeps) is the same on both. What differs:

- **Priorities on the wire.** agentyard uses 0..9, 9 the most urgent. kombu's Redis transport
  keeps one list per priority and serves 0 first, so the scale is inverted; RabbitMQ serves the
  highest first from queues declared with ``x-max-priority``, so it is sent as it is.
- **Celery's settings.** Redis: the transport's priority steps, separator, key prefix and
  visibility timeout (a message a worker took comes back only after it). RabbitMQ: every queue
  declared with ``x-max-priority`` (by every producer and worker alike, or RabbitMQ refuses the
  second declaration), and publisher confirms, so a publish returns only once the broker has
  the message.
- **What the broker shows.** Both: the depth of each queue (metrics, and the sweep that finds a
  request recorded but in no queue: its publish never happened, the process was killed between
  its commit and its publish). Redis only: which requests workers hold unacknowledged, and since
  when (kombu's Redis transport can lose a message a worker popped and died before recording,
  and gives back what a dead worker held only after the visibility timeout). RabbitMQ shows no
  held message by id, and needs none: it loses no message a worker took, and gives back at once
  what a dead connection held, so a request it has is waiting or being started.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, Protocol
from urllib.parse import urlsplit

from kombu import Connection

from bus.broker_view import SEP
from bus.priorities import DEFAULT, HIGHEST, PRIORITY_STEPS, check
from storage.settings import Settings
from storage.url_checks import AMQP_SCHEMES


class QueueDepths(Protocol):
    def queue_depths(self, queues: list[str]) -> dict[str, int]:
        """Messages waiting in each of ``queues`` (not those a worker has taken)."""
        ...


class BrokerContents(QueueDepths, Protocol):
    """What the sweep reads to tell a request that waits from one the broker never got or lost."""

    def held_since(self) -> dict[str, float]:
        """Task id -> when a worker took it, for the messages workers hold unacknowledged."""
        ...


class Broker(ABC):
    name: str

    @abstractmethod
    def wire_priority(self, priority: int) -> int:
        """agentyard's priority (0..9, 9 the most urgent) as this broker's message priority."""

    @abstractmethod
    def celery_settings(self, settings: Settings) -> dict[str, Any]:
        """Celery's settings that are this broker's own."""


class RedisBroker(Broker):
    name = "redis"

    def wire_priority(self, priority: int) -> int:
        return HIGHEST - check(priority)

    def celery_settings(self, settings: Settings) -> dict[str, Any]:
        options: dict[str, Any] = {
            "priority_steps": PRIORITY_STEPS,
            "sep": SEP,
            "queue_order_strategy": "priority",
            "visibility_timeout": settings.visibility_timeout_s,
            # kombu 5.7: sweep for messages of dead consumers every 10 s, not every 100 s.
            "unacked_restore_interval": 10,
            "unacked_restore_throttle": 1,
        }
        if settings.redis_key_prefix:
            options["global_keyprefix"] = settings.redis_key_prefix
        return {"broker_transport_options": options}


class RabbitMQBroker(Broker):
    name = "rabbitmq"

    def wire_priority(self, priority: int) -> int:
        return check(priority)

    def celery_settings(self, settings: Settings) -> dict[str, Any]:
        return {
            "broker_transport_options": {"confirm_publish": True},
            # Every queue Celery declares (workers, producers, Flower) gets x-max-priority.
            "task_queue_max_priority": HIGHEST,
            "task_default_priority": self.wire_priority(DEFAULT),
        }


class RabbitMQQueues:
    """The depth of RabbitMQ queues, read by declaring each passively (nothing is created)."""

    def __init__(self, connect: Callable[[], Connection]) -> None:
        """``connect``: a connection to the broker, asked for at each reading."""
        self._connect = connect

    def held_since(self) -> dict[str, float]:
        """None by id (RabbitMQ does not say): a live worker starts what it takes at once, and
        what a dead one held is back in its queue."""
        return {}

    def queue_depths(self, queues: list[str]) -> dict[str, int]:
        depths: dict[str, int] = {}
        with self._connect() as connection:
            channel = connection.channel()
            try:
                for queue in queues:
                    try:
                        depths[queue] = int(
                            channel.queue_declare(queue=queue, passive=True).message_count
                        )
                    except connection.channel_errors:  # no such queue yet: nothing waits in it
                        depths[queue] = 0
                        channel = connection.channel()  # the broker closed the last one
            finally:
                channel.close()
        return depths


REDIS = RedisBroker()
RABBITMQ = RabbitMQBroker()


def broker_for(url: str | None) -> Broker:
    """The broker a URL names: RabbitMQ for ``amqp://`` (and ``amqps://``, ``pyamqp://``),
    Redis for everything else agentyard accepts (the settings refuse any other scheme)."""
    scheme = urlsplit(url or "").scheme
    return RABBITMQ if scheme in AMQP_SCHEMES else REDIS
