"""A consumer that takes one request from an agent queue, as a worker does, and never starts it.

Run as ``python -m tests.system.held_request <queue>`` with a test's settings in the environment:
it takes one message the way an agentyard worker does (acks late, so the broker records it as
held), prints ``held <task id>`` and waits to be killed: a worker that died holding a request
it had not started.
"""

from __future__ import annotations

import sys
import time

from kombu import Message, Queue

from storage.settings import Settings
from workers.celery_app import make_celery


def main(queue: str) -> None:
    app = make_celery("held-request", Settings())
    taken: list[str] = []

    def hold(body: object, message: Message) -> None:
        taken.append(str(message.headers["id"]))  # and no ack: the broker keeps it as held

    with app.connection_for_read() as connection:
        consumer = connection.Consumer(Queue(queue), callbacks=[hold], accept=["json"])
        consumer.qos(prefetch_count=1)
        with consumer:
            while not taken:
                connection.drain_events(timeout=30)
        print(f"held {taken[0]}", flush=True)
        while True:
            time.sleep(1)


if __name__ == "__main__":
    main(sys.argv[1])
