"""Subscriptions kept in Redis (fakeredis): every producer sees the same subscribers."""

from __future__ import annotations

import fakeredis

from storage.subscription_store import SubscriptionStore


def test_subscribers_of_a_type_are_seen_by_every_producer() -> None:
    client = fakeredis.FakeRedis()
    one, other = SubscriptionStore(client, "t"), SubscriptionStore(client, "t")
    one.subscribe("writer", ["notification", "query"])
    other.subscribe("reviewer", ["notification"])

    assert one.subscribers("notification") == ("reviewer", "writer")
    assert other.subscribers("query") == ("writer",)
    assert one.subscriptions("writer") == ("notification", "query")


def test_unsubscribing_removes_the_agent_from_those_types_only() -> None:
    store = SubscriptionStore(fakeredis.FakeRedis(), "t")
    store.subscribe("writer", ["notification", "query"])
    store.unsubscribe("writer", ["query"])

    assert store.subscribers("query") == ()
    assert store.subscribers("notification") == ("writer",)
    assert store.subscriptions("writer") == ("notification",)


def test_teams_do_not_see_each_others_subscriptions() -> None:
    client = fakeredis.FakeRedis()
    SubscriptionStore(client, "a").subscribe("writer", ["notification"])
    assert SubscriptionStore(client, "b").subscribers("notification") == ()
