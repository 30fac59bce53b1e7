"""Leases in Redis: one process at a time does each job (a sweep), and another takes it over
within the lease's time when the holder dies.

A process holds a lease by renewing it well within its time (``hold``); one that stops gives it
up (``release``), so another takes over at once; one that dies simply stops renewing, and the
lease runs out. Every take-over raises the job's fence, so a holder can tell it lost the lease
in between. Both transitions are Lua scripts (``storage/lua/lease_*.lua``); time is Redis's own.

A lease is about doing a job once, not about safety: the jobs it guards (the sweeps) make every
change with a compare-and-set on the rows they touch, so two holders at once (a holder paused
past its time, Redis losing its data) do no harm; they only repeat each other's work.

Keys, under ``<prefix>agentyard:lease:{<team>}:``: ``<job>`` (the lease: holder and fence) and
``<job>:fence`` (the job's counter of holdings).
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass

import redis

from storage.redis_client import lua_script, text_of


def process_id() -> str:
    """An id for this process that no other process, here or elsewhere, shares."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True, slots=True)
class Holding:
    """The answer to ``hold``: whether the caller holds the lease, and who does."""

    held: bool
    holder: str  # the caller's id when held
    fence: int | None = None  # when held: the number of this holding
    left_s: float = 0.0  # when another holds it: how long until it runs out unless renewed


class LeaseStore:
    def __init__(self, client: redis.Redis, team: str, key_prefix: str = "") -> None:
        self._client = client
        self.prefix = f"{key_prefix}agentyard:lease:{{{team}}}:"
        self._hold = lua_script(client, "lease_hold")
        self._release = lua_script(client, "lease_release")

    def hold(self, job: str, holder: str, ttl_s: float) -> Holding:
        """Take the lease of ``job`` for ``holder``, or keep it for another ``ttl_s``."""
        key = self.prefix + job
        reply = self._hold(keys=[key, f"{key}:fence"], args=[holder, max(1, int(ttl_s * 1000))])
        if int(reply[0]) == 1:
            return Holding(True, holder, fence=int(reply[1]))
        return Holding(False, text_of(reply[1]), left_s=max(0, int(reply[2])) / 1000)

    def release(self, job: str, holder: str) -> bool:
        """Give the lease of ``job`` up if ``holder`` has it; True if it did."""
        return bool(int(self._release(keys=[self.prefix + job], args=[holder])))

    def holder(self, job: str) -> str | None:
        """Who holds the lease of ``job`` now (None: nobody)."""
        found = self._client.hget(self.prefix + job, "holder")
        return None if found is None else text_of(found)
