"""Spend caps in Redis: reserve a call's worst case against every cap at once, then settle.

All of it is two Lua scripts (``storage/lua/budget_*.lua``), so a check and its change are one
atomic step for every worker of every pod: N concurrent calls can never together pass a cap
that only some of them fit under. Money is integer micro-dollars and time is Redis's own.

Every key of a team's budgets shares the team's hash tag (``{team}``), so one script can touch
the caps of an agent, a workflow run and a workflow type together, on a cluster too.

Keys, under ``<prefix>agentyard:budget:{<team>}:``
- ``spent:<scope>:<period>`` and ``reserved:<scope>:<period>``: integers; ``<period>`` is
  ``d<days since the epoch>`` for daily caps (kept three days), ``total`` otherwise (a run's
  keys are kept for a week after its last call);
- ``call:<id>``: one call's record, a single string: ``held <amount> <counter> …`` while its
  hold is open (each counter named by what follows ``spent:`` or ``reserved:`` in its keys), then
  ``settled <cost>`` or ``forfeited <amount> <counter> …`` for a day, so that settling is
  idempotent and a late settlement still corrects what was booked; ``open``: every open hold by
  the time it runs out, and ``due``: a time none of them runs out before (so that a reservation
  looks for holds past their time only once one may be). A hold that runs out is not handed
  back: its call's worker died (or the call outlived its lease), the call may have been billed,
  so its worst case is booked as spent;
- ``loaded``: set when the counters were restored from the cost ledger. Without it (Redis lost
  its data) nothing is held: the caller restores the counters first, so caps hold across it.

Holds of the earlier format (a hash at ``hold:<id>`` listed in ``holds``, with ``settled:<id>``
and ``expired:<id>`` beside it) are still read where a rolling upgrade meets them: by ``forfeit``
(the sweep may book a call held by a worker of the earlier version, which settles its own calls
with its own script) and by ``holds`` and ``held_now``. A reservation does not look for them
among the holds past their time: one left by a dead worker counts as held until the sweep books
it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

import redis

from storage.redis_client import lua_script, text_of

RUN_KEYS_LIVE_S = 7 * 86400
DAY_KEYS_LIVE_S = 3 * 86400

Period = Literal["day", "total", "run"]


@dataclass(frozen=True, slots=True)
class Cap:
    """A limit on the spend of one scope (``agent:<id>``, ``run:<id>``, ``workflow:<name>``)."""

    scope: str
    limit_micro: int
    period: Period


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a reservation was refused: the first cap it would have broken."""

    scope: str
    spent_micro: int
    reserved_micro: int
    cap_micro: int


@dataclass(frozen=True, slots=True)
class Held:
    """The reservations open at one moment: how many, and the micro-dollars they hold."""

    count: int
    micro: int


class CountersNotLoaded(Exception):
    """Redis holds no spend counters for this team (it lost its data, or never had them): they
    must be restored from the cost ledger before anything is held."""


class Settled(StrEnum):
    NOW = "settled"
    AFTER_EXPIRY = "settled after its hold ran out"
    BEFORE = "already settled"
    HOLD_LOST = "booked on the caps given: Redis had lost the hold"


class Booked(StrEnum):
    """What ``forfeit`` found of a call cut off by a dead worker."""

    SETTLED = "settled: its cost is known"
    FORFEITED = "its hold was booked at its worst case"
    UNHELD = "Redis knew nothing of it: its worst case was booked on the caps given"


@dataclass(frozen=True, slots=True)
class Forfeit:
    booked: Booked
    amount_micro: int  # the call's known cost (SETTLED), or the most it can have cost

    @property
    def known(self) -> bool:
        return self.booked is Booked.SETTLED


class BudgetStore:
    def __init__(self, client: redis.Redis, team: str, key_prefix: str = "") -> None:
        self._client = client
        self.prefix = f"{key_prefix}agentyard:budget:{{{team}}}:"
        self._reserve = lua_script(client, "budget_reserve")
        self._settle = lua_script(client, "budget_settle")
        self._restore = lua_script(client, "budget_restore")
        self._forfeit = lua_script(client, "budget_forfeit")

    def reserve(
        self, hold_id: str, amount_micro: int, ttl_s: float, caps: list[Cap]
    ) -> Refusal | None:
        """Hold ``amount_micro`` against every cap in ``caps``, or hold nothing and say which cap
        would break. Holding again under the same id holds nothing more."""
        args: list[Any] = [hold_id, int(amount_micro), max(0, math.ceil(ttl_s))]
        for cap in caps:
            args += [cap.scope, int(cap.limit_micro), cap.period]
        reply = self._reserve(keys=[self.prefix], args=args)
        if int(reply[0]) == 2:
            raise CountersNotLoaded(self.prefix)
        if int(reply[0]) == 1:
            return None
        _, scope, spent, reserved, cap_micro = reply
        return Refusal(text_of(scope), int(spent), int(reserved), int(cap_micro))

    def settle(self, hold_id: str, cost_micro: int, caps: list[Cap] | None = None) -> Settled:
        """Book what the call cost and free the rest of its hold (0: a call never made).

        ``caps``, the caps the call was held against, say where to book the cost if Redis lost
        the hold with the rest of its data; ``CountersNotLoaded`` if the counters are not
        restored yet (nothing is booked: restore them, then settle again)."""
        args: list[Any] = [hold_id, int(cost_micro)]
        for cap in caps or []:
            args += [cap.scope, cap.period]
        reply = int(self._settle(keys=[self.prefix], args=args))
        if reply == 3:
            raise CountersNotLoaded(self.prefix)
        return {1: Settled.NOW, 2: Settled.AFTER_EXPIRY, 4: Settled.HOLD_LOST}.get(
            reply, Settled.BEFORE
        )

    def forfeit(self, hold_id: str, worst_micro: int, caps: list[Cap]) -> Forfeit:
        """Book a call cut off by a dead worker at its worst case, as spent but unknown, unless
        it settled; ``worst_micro`` is booked on ``caps`` if Redis knows nothing of the hold.
        Idempotent; ``CountersNotLoaded`` if the counters are not restored yet (nothing is
        booked). A settlement that comes later corrects the booking to the real cost."""
        args: list[Any] = [hold_id, int(worst_micro)]
        for cap in caps:
            args += [cap.scope, cap.period]
        reply = self._forfeit(keys=[self.prefix], args=args)
        kind = int(reply[0])
        if kind == 3:
            raise CountersNotLoaded(self.prefix)
        booked = {0: Booked.SETTLED, 1: Booked.FORFEITED, 2: Booked.UNHELD}[kind]
        return Forfeit(booked, int(reply[1]))

    def restore(self, spent: dict[tuple[str, str], int]) -> int:
        """Raise each ``(scope, period)`` counter to at least the amount given (the ledger's
        sums); returns how many were raised. Daily counters keep their three days' life."""
        args: list[Any] = []
        for (scope, period), amount in spent.items():
            if period.startswith("d"):
                keep = DAY_KEYS_LIVE_S
            else:
                keep = RUN_KEYS_LIVE_S if scope.startswith("run:") else 0
            args += [f"{scope}:{period}", int(amount), keep]
        return int(self._restore(keys=[self.prefix], args=args))

    def holds(self) -> list[tuple[str, int]]:
        """The reservations open now: (hold id, micro-dollars held)."""
        return self._amounts_held(since="-inf")

    def held_now(self) -> Held:
        """The reservations holding room on the caps right now: those whose time has not run
        out (one past its time holds nothing: the next reservation releases it). Three round
        trips, however many holds are open."""
        seconds, _ = self._client.time()
        amounts = [amount for _, amount in self._amounts_held(since=f"({int(seconds)}")]
        return Held(count=len(amounts), micro=sum(amounts))

    def _amounts_held(self, since: str) -> list[tuple[str, int]]:
        """(hold id, amount) of every open hold that runs out after ``since`` (a ZRANGEBYSCORE
        bound), of both formats: ``call:<id>`` records listed in ``open``, and the earlier
        hashes listed in ``holds``."""
        pipe = self._client.pipeline(transaction=False)
        pipe.zrangebyscore(f"{self.prefix}open", since, "+inf")
        pipe.zrangebyscore(f"{self.prefix}holds", since, "+inf")
        ids, earlier_ids = ([text_of(raw) for raw in found] for found in pipe.execute())
        for hold_id in ids:
            pipe.get(f"{self.prefix}call:{hold_id}")
        for hold_id in earlier_ids:
            pipe.hget(f"{self.prefix}hold:{hold_id}", "amount")
        replies = pipe.execute()
        amounts = [_held_amount(record) for record in replies[: len(ids)]]
        amounts += [None if raw is None else int(raw) for raw in replies[len(ids) :]]
        return [
            (hold_id, amount)
            for hold_id, amount in zip(ids + earlier_ids, amounts, strict=True)
            if amount is not None
        ]

    def spent(self, scope: str, period: str) -> int:
        """``period``: ``total``, or ``d<day number>`` for a daily cap."""
        return int(self._client.get(f"{self.prefix}spent:{scope}:{period}") or 0)

    def reserved(self, scope: str, period: str) -> int:
        return int(self._client.get(f"{self.prefix}reserved:{scope}:{period}") or 0)

    def today(self) -> str:
        """The period name of today's daily caps, by Redis's clock."""
        seconds, _ = self._client.time()
        return f"d{int(seconds) // 86400}"


def _held_amount(record: Any) -> int | None:
    """The amount a call's record holds: ``held <amount> …``; None once settled or forfeited
    (or gone)."""
    if record is None:
        return None
    state, amount, *_ = text_of(record).split(" ")
    return int(amount) if state == "held" else None
