"""Subscriptions in Redis: which agents receive the messages of each type that are broadcast.

Kept in Redis so that every producer, on any pod, sees the same subscribers at once. Keys, under
``<prefix>agentyard:bus:{<team>}:``: ``subscribers:<type>``, a set of agent ids per message type,
and ``subscriptions:<agent id>``, the same facts by agent (for listing). Both sets of one change
are written in one MULTI, so the two views never disagree.
"""

from __future__ import annotations

from collections.abc import Iterable

import redis

from storage.redis_client import text_of


class SubscriptionStore:
    def __init__(self, client: redis.Redis, team: str, key_prefix: str = "") -> None:
        self._client = client
        self.prefix = f"{key_prefix}agentyard:bus:{{{team}}}:"

    def subscribe(self, agent_id: str, types: Iterable[str]) -> None:
        self._change(agent_id, types, add=True)

    def unsubscribe(self, agent_id: str, types: Iterable[str]) -> None:
        self._change(agent_id, types, add=False)

    def subscribers(self, message_type: str) -> tuple[str, ...]:
        """The agents subscribed to ``message_type``, in a stable order."""
        members = self._client.smembers(f"{self.prefix}subscribers:{message_type}")
        return tuple(sorted(text_of(m) for m in members))

    def subscriptions(self, agent_id: str) -> tuple[str, ...]:
        members = self._client.smembers(f"{self.prefix}subscriptions:{agent_id}")
        return tuple(sorted(text_of(m) for m in members))

    def _change(self, agent_id: str, types: Iterable[str], *, add: bool) -> None:
        chosen = list(types)
        if not chosen:
            return
        with self._client.pipeline(transaction=True) as pipe:
            for message_type in chosen:
                key = f"{self.prefix}subscribers:{message_type}"
                if add:
                    pipe.sadd(key, agent_id)
                else:
                    pipe.srem(key, agent_id)
            mine = f"{self.prefix}subscriptions:{agent_id}"
            if add:
                pipe.sadd(mine, *chosen)
            else:
                pipe.srem(mine, *chosen)
            pipe.execute()
