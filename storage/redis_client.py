"""The Redis client agentyard uses for shared state, one pool per URL and process."""

from __future__ import annotations

import threading

import redis

from storage.errors import ConfigurationError

_lock = threading.Lock()
_clients: dict[str, redis.Redis] = {}


def redis_for(url: str | None) -> redis.Redis:
    if not url:
        raise ConfigurationError(
            "no Redis configured: set AGENTYARD_REDIS_URL (for example redis://127.0.0.1:6379/0)"
        )
    with _lock:
        client = _clients.get(url)
        if client is None:
            client = redis.Redis.from_url(url, decode_responses=True, health_check_interval=30)
            _clients[url] = client
        return client
