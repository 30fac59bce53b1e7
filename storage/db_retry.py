"""Riding out a database that went away: retry an operation while the connection is what failed.

A PostgreSQL restart, a failover or a dropped connection fails the statement under way with an
operational error; the pool throws the connection away and the next checkout connects afresh.
``retrying`` runs an operation again, with capped exponential backoff, until it succeeds or
``give_up_after_s`` passes. The operation must be safe to run again: a transaction that failed
was rolled back, and when a COMMIT's outcome is unknown the caller checks before redoing it.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar

import psycopg
import sqlalchemy.exc
import structlog

log = structlog.get_logger(__name__)

T = TypeVar("T")

# What a lost connection or a server that is restarting raises (SQLite's "database is locked"
# is an OperationalError too, and is worth waiting out as well).
RETRYABLE: tuple[type[BaseException], ...] = (
    psycopg.OperationalError,
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
)


def retrying(
    operation: Callable[[], T],
    what: str,
    give_up_after_s: float = 60.0,
    first_wait_s: float = 0.1,
    max_wait_s: float = 5.0,
) -> T:
    deadline = time.monotonic() + give_up_after_s
    wait = first_wait_s
    while True:
        try:
            return operation()
        except RETRYABLE as exc:
            if time.monotonic() + wait > deadline:
                raise
            log.warning("db.retrying", operation=what, error=str(exc).splitlines()[0], wait_s=wait)
            time.sleep(wait * random.uniform(0.5, 1.0))
            wait = min(max_wait_s, wait * 2)
