"""What the Redis broker holds right now, read the way kombu's Redis transport lays it out.

A queue is one Redis list per priority band: ``<queue>`` for band 0 and ``<queue>:<band>`` for
the others (separator ``:``, steps 0..9); messages a worker took but has not acknowledged sit in
the ``unacked`` hash, and the time each was taken in the ``unacked_index`` sorted set. Every key
carries the configured prefix. Used to tell a request that is still waiting from one the broker
lost (popped by a worker that died before recording it as unacknowledged: a window kombu's Redis
transport cannot close) or one a dead worker still holds (kombu gives it back only after the
visibility timeout), and for queue-depth metrics.
"""

from __future__ import annotations

import json
import time

import redis

from bus.priorities import PRIORITY_STEPS

UNACKED_KEY = "unacked"
UNACKED_INDEX_KEY = "unacked_index"  # delivery tag -> when a worker took it (epoch seconds)
SEP = ":"  # kombu's separator between a queue and its priority band; the app is built with it


class BrokerView:
    def __init__(self, client: redis.Redis, prefix: str = "") -> None:
        self._client = client
        self._prefix = prefix

    def _key(self, name: str) -> str:
        return f"{self._prefix}{name}"

    def band_keys(self, queue: str) -> list[str]:
        return [self._key(queue if band == 0 else f"{queue}{SEP}{band}") for band in PRIORITY_STEPS]

    def queue_depth(self, queue: str) -> int:
        """Messages waiting in ``queue``, all priority bands summed."""
        return self.queue_depths([queue])[queue]

    def queue_depths(self, queues: list[str]) -> dict[str, int]:
        """Messages waiting in each of ``queues``, all priority bands summed; one round trip."""
        pipe = self._client.pipeline(transaction=False)
        for queue in queues:
            for key in self.band_keys(queue):
                pipe.llen(key)
        lengths = [int(n) for n in pipe.execute()]
        bands = len(PRIORITY_STEPS)
        return {queue: sum(lengths[i * bands : (i + 1) * bands]) for i, queue in enumerate(queues)}

    def unacked_task_ids(self) -> set[str]:
        """Task ids of the messages workers hold without having acknowledged them."""
        return set(self.held_since())

    def held_since(self) -> dict[str, float]:
        """Task id -> when a worker took it (epoch seconds), for every message workers hold
        without having acknowledged it; one round trip."""
        pipe = self._client.pipeline(transaction=False)
        pipe.hgetall(self._key(UNACKED_KEY))
        pipe.zrange(self._key(UNACKED_INDEX_KEY), 0, -1, withscores=True)
        messages, taken = pipe.execute()
        taken_at = {_text(tag): float(score) for tag, score in taken}
        held: dict[str, float] = {}
        for tag, raw in messages.items():
            try:
                task_id = str(json.loads(raw)[0]["headers"]["id"])
            except (ValueError, LookupError, TypeError):
                continue  # not a Celery message: none of ours
            # No index entry: kombu is between its two writes; count it as taken just now.
            held[task_id] = taken_at.get(_text(tag), time.time())
        return held


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
