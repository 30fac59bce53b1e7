"""TEMPORARY: what-if patches applied in the bench workers only (BENCH_EXPERIMENT=a,b,...)."""

from __future__ import annotations

import os
from typing import Any


def apply(orc: Any) -> None:
    wanted = set(filter(None, os.environ.get("BENCH_EXPERIMENT", "").split(",")))
    if "noping" in wanted:
        import sqlalchemy

        import storage.db as db

        def _create_engine(url: str) -> Any:
            return sqlalchemy.create_engine(url, pool_pre_ping=False, pool_size=10, max_overflow=20)

        db._create_engine = _create_engine
    if "noevents" in wanted:
        orc.celery.conf.update(worker_send_task_events=False, task_send_sent_event=False)
    if "norouted" in wanted:
        from bus.publisher import Bus

        def route(self: Any, messages: Any) -> None:
            for message in messages:
                self._send(message)

        Bus.route = route
    if "inline" in wanted:
        from bus.publisher import Bus
        from bus.routing import COORDINATOR_QUEUE, route_for

        original = Bus._send

        def _send(self: Any, message: Any) -> None:
            if route_for(message.to[0]).queue == COORDINATOR_QUEUE and message.sender != "client":
                orc._advance(message.workflow_id)
                return
            original(self, message)

        Bus._send = _send
