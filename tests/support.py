"""Helpers shared by the tests: an in-process bus that keeps messages in memory, its driver,
and a free port."""

from __future__ import annotations

import socket
import time
from collections import deque
from typing import Any

import httpcore2
import pytest

from bus.envelope import COORDINATOR, AgentMessage
from bus.publisher import Bus
from orchestration import Orchestrator
from orchestration.results import WorkflowResult
from workers import tracing


class InlineBus(Bus):
    """The real bus (audit rows, and Redis stores when given) with an in-memory queue instead of
    a broker: ``queue`` holds (recipient, the broker's copy), ``headers`` the headers each copy
    travels with, by (message id, recipient)."""

    def __init__(self, database_url: str, **stores: Any) -> None:
        stores.setdefault("trace_headers", tracing.headers_for)
        super().__init__(app=None, database_url=database_url, **stores)  # type: ignore[arg-type]
        self.queue: deque[tuple[str, AgentMessage]] = deque()
        self.headers: dict[tuple[str, str], dict[str, str]] = {}
        self.sent: list[AgentMessage] = []
        self.broker_down = False  # set it to see what a send that fails does

    def send_copy(self, message: AgentMessage, recipient: str) -> None:
        if self.broker_down:
            raise ConnectionError("broker unreachable")
        self.queue.append((recipient, self.on_the_wire(message)))
        self.headers[(message.id, recipient)] = self.headers_for(message)
        self.sent.append(message)


def drain(orc: Orchestrator, bus: InlineBus, limit: int = 1000) -> int:
    """Deliver queued messages the way workers would, until none is left. Returns how many."""
    delivered = 0
    while bus.queue:
        recipient, message = bus.queue.popleft()
        headers = bus.headers.get((message.id, recipient), {})
        if recipient == COORDINATOR:
            orc.deliver_to_coordinator(message, headers)
        else:
            orc.deliver(recipient, message, headers)
        delivered += 1
        assert delivered < limit, "the workflow did not settle: messages keep coming"
    return delivered


def run_inline(
    orc: Orchestrator, bus: InlineBus, workflow: str, text: str, priority: int = 5
) -> WorkflowResult:
    run = orc.submit(workflow, text, priority=priority)
    drain(orc, bus)
    return run.result()


def reads_late(monkeypatch: pytest.MonkeyPatch, delay_s: float) -> float:
    """Make this process's HTTP client a worker that comes to read its socket ``delay_s`` after it
    sent each request (what a cold start, a starved CPU or the GIL do): the first read after each
    request waits that long before it reads. Returns ``delay_s``."""
    original = httpcore2.SyncBackend.connect_tcp

    def connect_tcp(self: httpcore2.SyncBackend, *args: Any, **kwargs: Any) -> Any:
        stream = original(self, *args, **kwargs)
        read, write = stream.read, stream.write
        sent = [False]

        def late_read(max_bytes: int, timeout: float | None = None) -> bytes:
            if sent[0]:
                sent[0] = False
                time.sleep(delay_s)
            return read(max_bytes, timeout)

        def noted_write(buffer: bytes, timeout: float | None = None) -> None:
            write(buffer, timeout)
            sent[0] = True

        stream.read, stream.write = late_read, noted_write  # type: ignore[method-assign]
        return stream

    monkeypatch.setattr(httpcore2.SyncBackend, "connect_tcp", connect_tcp)
    return delay_s


def commands_read(monkeypatch: pytest.MonkeyPatch, orc: Orchestrator) -> None:
    """Point the ``agentyard`` commands run in this test at ``orc``'s database, as a shell with
    ``AGENTYARD_DATABASE_URL`` (and, since the servers go together, a Redis URL) would."""
    monkeypatch.setenv("AGENTYARD_DATABASE_URL", orc.database_url)
    monkeypatch.setenv("AGENTYARD_REDIS_URL", orc.settings.redis_url or "memory://")


def free_port() -> int:
    """A TCP port of 127.0.0.1 nothing listens on now (the OS picks it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
