"""Application-level acknowledgements in Redis: who still owes one, and by when.

A message published with ``requires_ack`` must be acknowledged by each recipient within its
``ack_timeout_s``; otherwise the bus's sweeper publishes it again (escalated, ``attempt`` + 1) or,
after the last attempt, dead-letters it. Every check-and-change is one Lua script
(``storage/lua/ack_*.lua``), so any number of workers and sweepers agree on each entry: an entry
is acknowledged once, claimed by one sweeper at a time, and a late acknowledgement still stops
a copy that is on a queue from being processed. Time is Redis's own.

Keys, under ``<prefix>agentyard:acks:{<team>}:`` (one hash tag per team), each entry being
``<message id>|<recipient>``:
- ``pending``: a sorted set of the entries waiting, by deadline;
- ``attempts``: a hash of the attempt each waiting entry was last published as;
- ``acked:<entry>``: the acknowledgement (the attempt it acknowledged), kept ``ACKED_KEPT_S``;
- ``processing:<entry>``: the lease of the delivery processing it, for ``ack_timeout_s``: a
  copy that arrives meanwhile (published again while the first waited on a queue, or given back
  by the broker) is not processed at the same time;
- ``loaded``: set once what PostgreSQL says is still awaited has been loaded. Redis that lost
  its data lacks it, and the bus's sweeper then loads the awaited acknowledgements again.
PostgreSQL keeps the record of every acknowledgement too (``message_acks``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import redis

from storage.redis_client import lua_script, text_of

# Long enough for every copy of a message still on a queue to come by (the bus checks an older
# copy against PostgreSQL); short enough that Redis does not fill up with acknowledgements.
ACKED_KEPT_S = 6 * 3600
SEPARATOR = "|"


class Begun(StrEnum):
    """Whether a delivery may process a message that asks for an acknowledgement."""

    NOW = "this delivery processes it"
    NOW_UNSURE = "this delivery processes it unless PostgreSQL has its acknowledgement"
    ACKNOWLEDGED = "acknowledged already"
    IN_PROGRESS = "another delivery is processing it"


class Acked(StrEnum):
    NOW = "acknowledged"
    BEFORE = "acknowledged before"
    NOT_AWAITED = "nothing waited for it"


@dataclass(frozen=True, slots=True)
class Acknowledgement:
    """What acknowledging did, and which published attempt it acknowledged (0: none awaited)."""

    outcome: Acked
    attempt: int


@dataclass(frozen=True, slots=True)
class Overdue:
    """An acknowledgement that did not come in time, claimed by one sweeper."""

    message_id: str
    recipient: str
    attempt: int


def entry(message_id: str, recipient: str) -> str:
    return f"{message_id}{SEPARATOR}{recipient}"


class AckStore:
    def __init__(self, client: redis.Redis, team: str, key_prefix: str = "") -> None:
        self._client = client
        self.prefix = f"{key_prefix}agentyard:acks:{{{team}}}:"
        self._expect = lua_script(client, "ack_expect")
        self._confirm = lua_script(client, "ack_confirm")
        self._due = lua_script(client, "ack_due")
        self._drop = lua_script(client, "ack_drop")
        self._begin = lua_script(client, "ack_begin")

    def expect(
        self,
        message_id: str,
        recipients: tuple[str, ...],
        attempt: int,
        timeout_s: float,
        *,
        keep_waiting: bool = False,
    ) -> int:
        """Wait for each recipient's acknowledgement of ``attempt`` for ``timeout_s``; returns
        how many this call set waiting (one already acknowledged is not). ``keep_waiting``
        leaves an entry already awaited as it is."""
        args: list[Any] = [float(timeout_s), int(attempt), "1" if keep_waiting else "0"]
        args += [entry(message_id, r) for r in recipients]
        return int(self._expect(keys=[self.prefix], args=args))

    def begin(self, message_id: str, recipient: str, lease_s: float) -> Begun:
        """A delivery starts: take the processing lease for ``lease_s`` (and give an awaited
        acknowledgement that long from now), unless acknowledged or taken already.
        ``NOW_UNSURE``: taken, but Redis lost its data since the acknowledgements were loaded."""
        reply = int(
            self._begin(keys=[self.prefix], args=[entry(message_id, recipient), float(lease_s)])
        )
        return {1: Begun.NOW, 0: Begun.ACKNOWLEDGED, 3: Begun.NOW_UNSURE}.get(
            reply, Begun.IN_PROGRESS
        )

    def release(self, message_id: str, recipient: str) -> None:
        """The delivery holding the lease failed: another may process the message."""
        self._client.delete(f"{self.prefix}processing:{entry(message_id, recipient)}")

    def acknowledge(self, message_id: str, recipient: str) -> Acknowledgement:
        code, attempt = self._confirm(
            keys=[self.prefix], args=[entry(message_id, recipient), ACKED_KEPT_S]
        )
        outcome = {1: Acked.NOW, 0: Acked.BEFORE}.get(int(code), Acked.NOT_AWAITED)
        return Acknowledgement(outcome, int(attempt))

    def is_acknowledged(self, message_id: str, recipient: str) -> bool:
        return bool(self._client.exists(f"{self.prefix}acked:{entry(message_id, recipient)}"))

    def overdue(self, limit: int, claim_s: float) -> list[Overdue]:
        """Claim up to ``limit`` overdue acknowledgements for ``claim_s`` seconds."""
        reply = self._due(keys=[self.prefix], args=[int(limit), float(claim_s)])
        claimed = []
        for i in range(0, len(reply), 2):
            message_id, _, recipient = text_of(reply[i]).partition(SEPARATOR)
            claimed.append(Overdue(message_id, recipient, int(text_of(reply[i + 1]))))
        return claimed

    def give_up(self, message_id: str, recipient: str) -> bool:
        """Stop waiting (the message is dead-lettered); False if an acknowledgement came first."""
        return bool(int(self._drop(keys=[self.prefix], args=[entry(message_id, recipient)])))

    def loaded(self) -> bool:
        """Whether the awaited acknowledgements are known here (False after Redis lost its data)."""
        return bool(self._client.exists(f"{self.prefix}loaded"))

    def mark_loaded(self) -> None:
        self._client.set(f"{self.prefix}loaded", 1)

    def waiting(self) -> int:
        return int(self._client.zcard(f"{self.prefix}pending"))
