"""The provider's deadline, kept on the wire: how long the provider has to answer, and no more.

An agent's ``timeout_s`` is the provider's time: it starts when the request's last byte has been
written to the socket and ends when the answer's last byte has been read. Every socket read of a
call is allowed only what is left of it, so a provider that hangs, or trickles its answer, frees
the worker's thread at the deadline (the SDK's own timeout bounds each read, not the answer).

Time the worker spends on its own (starting up, building the request, waiting for a CPU or the
GIL, parsing) is never the provider's: once the deadline has passed, a read still takes whatever
the provider already delivered into the socket's buffer, however late the worker comes for it.
So a timeout here means the provider did not deliver its answer in time, which is what the
agent's circuit breaker may count; an answer that did arrive is never turned into a timeout.

How: the SDK's HTTP client runs on a transport whose connection pool opens its sockets through
``WireDeadlineBackend``; each socket's reads and writes consult the ``WireClock`` of the call
under way in this thread (a context variable set by ``wire_clock``). A call made outside
``wire_clock`` behaves exactly as the plain transport would.
"""

from __future__ import annotations

import socket
import time
import urllib.request
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpcore2
import httpx2
from httpcore2 import NetworkBackend, NetworkStream, SyncBackend

# Past the deadline a read waits this long, so that bytes already in the socket's buffer (or in
# TLS's) are taken and nothing more is waited for.
BUFFERED_ONLY_S = 0.001


@dataclass(slots=True)
class WireClock:
    """One call's provider time: the deadline, and when the request went out and the answer came."""

    deadline_s: float | None
    sent_at: float | None = None  # time.monotonic() when the request's last byte was written
    answered_at: float | None = None  # ... when the last bytes of the answer were read

    def read_timeout(self, asked: float | None) -> float | None:
        """The timeout of the next read: what the caller asked, cut to what is left."""
        if self.deadline_s is None or self.sent_at is None:
            return asked
        left = max(self.deadline_s - (time.monotonic() - self.sent_at), BUFFERED_ONLY_S)
        return left if asked is None else min(asked, left)

    @property
    def wire_s(self) -> float | None:
        """Seconds from the request sent to the answer read (None if it never went out)."""
        if self.sent_at is None or self.answered_at is None:
            return None
        return self.answered_at - self.sent_at


_current: ContextVar[WireClock | None] = ContextVar("agentyard_wire_clock", default=None)


@contextmanager
def wire_clock(deadline_s: float | None) -> Iterator[WireClock]:
    """Keep the provider to ``deadline_s`` for the HTTP calls made in this block."""
    clock = WireClock(deadline_s)
    token = _current.set(clock)
    try:
        yield clock
    finally:
        _current.reset(token)


class _DeadlineStream(NetworkStream):
    """A socket whose reads stop at the current call's deadline."""

    def __init__(self, inner: NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        clock = _current.get()
        if clock is None:
            return self._inner.read(max_bytes, timeout)
        data = self._inner.read(max_bytes, clock.read_timeout(timeout))
        clock.answered_at = time.monotonic()
        return data

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, timeout)
        clock = _current.get()
        if clock is not None and buffer:
            clock.sent_at = time.monotonic()  # the last write of a request starts the clock

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: Any,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> NetworkStream:
        return _DeadlineStream(self._inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class WireDeadlineBackend(NetworkBackend):
    """httpcore's socket backend, with every stream it opens kept to the call's deadline."""

    def __init__(self, inner: NetworkBackend | None = None) -> None:
        self._inner = inner or SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> NetworkStream:
        return _DeadlineStream(
            self._inner.connect_tcp(host, port, timeout, local_address, socket_options)
        )

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> NetworkStream:
        return _DeadlineStream(self._inner.connect_unix_socket(path, timeout, socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


# TCP keep-alive on every connection, as the SDK's own client sets it: a connection the network
# dropped silently is found out.
_KEEPALIVE: list[tuple[int, int, int]] = [(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)]
for _name, _value in (("TCP_KEEPIDLE", 60), ("TCP_KEEPINTVL", 60), ("TCP_KEEPCNT", 5)):
    if hasattr(socket, _name):
        _KEEPALIVE.append((socket.IPPROTO_TCP, getattr(socket, _name), _value))


class WireDeadlineTransport(httpx2.HTTPTransport):
    """httpx's transport, its connections opened through ``WireDeadlineBackend``."""

    def __init__(self, *, limits: httpx2.Limits, proxy: str | None = None) -> None:
        super().__init__(limits=limits, proxy=proxy, socket_options=_KEEPALIVE)
        pool = self._pool
        if not isinstance(pool, httpcore2.ConnectionPool):  # pragma: no cover  (httpcore changed)
            raise TypeError(f"unexpected connection pool {type(pool).__name__}")
        # httpx takes no network backend of its own; the pool it built is given ours.
        pool._network_backend = WireDeadlineBackend(pool._network_backend)


def http_client(base_url: str, timeout_s: float, limits: httpx2.Limits) -> httpx2.Client:
    """An HTTP client for the SDK whose calls keep to ``wire_clock``'s deadline; it goes through
    the proxy the environment names for ``base_url`` (``HTTPS_PROXY``, ``NO_PROXY``...)."""
    return httpx2.Client(
        transport=WireDeadlineTransport(limits=limits, proxy=proxy_for(base_url)),
        timeout=timeout_s,
        follow_redirects=True,
    )


def proxy_for(url: str) -> str | None:
    """The proxy the environment names for ``url``, or None (none, or ``NO_PROXY`` says so)."""
    parts = urlsplit(url)
    proxies = urllib.request.getproxies()
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    if not proxy or urllib.request.proxy_bypass(parts.hostname or ""):
        return None
    return proxy
