"""What the Redis broker holds right now, read the way kombu's Redis transport lays it out.

A queue is one Redis list per priority band: ``<queue>`` for band 0 and ``<queue>:<band>`` for
the others (separator ``:``, steps 0..9); messages a worker took but has not acknowledged sit in
the ``unacked`` hash. Every key carries the configured prefix. Used to tell a request that is
still waiting from one the broker lost (popped by a worker that died before recording it as
unacknowledged: a window kombu's Redis transport cannot close), and for queue-depth metrics.
"""

from __future__ import annotations

import json

import redis

from bus.priorities import PRIORITY_STEPS

UNACKED_KEY = "unacked"
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
        ids: set[str] = set()
        for raw in self._client.hvals(self._key(UNACKED_KEY)):
            try:
                payload = json.loads(raw)[0]
                ids.add(str(payload["headers"]["id"]))
            except (ValueError, LookupError, TypeError):
                continue  # not a Celery message: none of ours
        return ids
