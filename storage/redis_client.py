"""The Redis client agentyard uses for shared state, one pool per URL and process."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import redis
from redis.commands.core import Script

from storage.errors import ConfigurationError

_LUA = Path(__file__).parent / "lua"
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
            # A Redis that does not answer a connection is refused in seconds, not after the
            # system's TCP timeout (minutes for an address nothing listens on).
            client = redis.Redis.from_url(
                url, decode_responses=True, health_check_interval=30, socket_connect_timeout=10
            )
            _clients[url] = client
        return client


def lua_script(client: redis.Redis, name: str) -> Script:
    """The script ``storage/lua/<name>.lua``, registered with ``client`` (sent by its hash)."""
    return client.register_script((_LUA / f"{name}.lua").read_text())


def load_scripts(client: redis.Redis) -> int:
    """Send every script of ``storage/lua`` to ``client``'s server now (``SCRIPT LOAD``), so that
    no first call finds its script missing there. Returns how many."""
    scripts = sorted(_LUA.glob("*.lua"))
    pipe = client.pipeline(transaction=False)
    for path in scripts:
        pipe.script_load(path.read_text())
    pipe.execute()
    return len(scripts)


def text_of(value: Any) -> str:
    """A Redis reply as text, whether or not the client decodes responses."""
    return value.decode() if isinstance(value, bytes) else str(value)
