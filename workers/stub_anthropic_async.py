"""The stub Messages API on one asyncio event loop: thousands of requests held open at once.

The threaded stub (``stub_anthropic``) gives every connection a thread, which is what a test
needs and all a test can afford; a benchmark that keeps a thousand model calls in flight, each
answered after a second, needs a server that holds a waiting request for the price of a
coroutine. This one parses HTTP/1.1 with ``h11`` (the state machine the SDK's own HTTP stack
is built on), keeps connections alive, and answers exactly what the threaded stub answers: the
same ``StubApp`` makes every reply, and the same ``/_stub/*`` endpoints script, count and reset
it. Its stats add ``in_flight`` (messages calls received and not yet answered, now) and
``in_flight_max``.

``AsyncStubServer`` runs the loop on a thread of its own (a context manager, like
``StubAnthropicServer``); ``agentyard stub-anthropic --asyncio`` runs it in the foreground.
Stopping it answers every call still waiting at once, then closes every connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import threading
from collections.abc import Callable
from typing import Self

import h11

from workers.stub_anthropic import (
    MIN_CACHE_TOKENS,
    Reply,
    StubApp,
    StubServer,
    StubState,
    trickled,
)

log = logging.getLogger(__name__)

READ_SIZE = 65_536
BACKLOG = 4096  # connections the kernel queues before the loop accepts them
STOP_GRACE_S = 5.0  # how long stopping waits for the calls in flight to be answered


class AsyncStubServer(StubServer):
    """The stub on a free 127.0.0.1 port, its event loop on a background thread."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        latency_s: float = 0.0,
        min_cache_tokens: int = MIN_CACHE_TOKENS,
    ) -> None:
        self.state = StubState(latency_s, min_cache_tokens)
        self.app = StubApp(self.state)
        self.host = host
        self.port = port
        self.base_url = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopping: asyncio.Event | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._ready = threading.Event()
        self._failed: BaseException | None = None

    def start(self) -> Self:
        self._thread = threading.Thread(
            target=self.serve_forever, name="stub-anthropic-asyncio", daemon=True
        )
        self._thread.start()
        self._ready.wait()
        if self._failed is not None:
            raise self._failed
        return self

    def serve_forever(self, on_ready: Callable[[], None] | None = None) -> None:
        """Serve on this thread until ``stop`` is called from another one."""
        asyncio.run(self._serve(on_ready))

    async def _serve(self, on_ready: Callable[[], None] | None) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        try:
            server = await asyncio.start_server(
                self._connection, self.host, self.port, backlog=BACKLOG
            )
        except OSError as error:
            self._failed = error
            self._ready.set()
            return
        self.port = server.sockets[0].getsockname()[1]
        self.base_url = f"http://{self.host}:{self.port}"
        self._ready.set()
        if on_ready is not None:
            on_ready()
        async with server:
            await self._stopping.wait()
            server.close()
            self.state.stopping.set()
            # The calls in flight are answered now (their waits end); then every connection goes.
            deadline = asyncio.get_running_loop().time() + STOP_GRACE_S
            while self.state.in_flight and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.01)
            for writer in list(self._writers):
                writer.close()

    def stop(self) -> None:
        if self._loop is not None and self._stopping is not None:
            with contextlib.suppress(RuntimeError):  # the loop has ended already
                self._loop.call_soon_threadsafe(self._stopping.set)
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    # -- one connection ------------------------------------------------------------------------

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = h11.Connection(h11.SERVER)
        self._writers.add(writer)
        try:
            while True:
                request = await _request(conn, reader)
                if request is None:
                    return
                method, target, headers, body = request
                reply = self.app.handle(method, target, headers, body)
                await self._answer(conn, writer, reply)
                if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                    return  # one side asked to close
                if self.state.stopping.is_set():
                    return
                conn.start_next_cycle()
        except (ConnectionError, h11.ProtocolError, asyncio.IncompleteReadError):
            log.debug("stub-anthropic: a connection ended badly", exc_info=True)
        finally:
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()

    async def _answer(
        self, conn: h11.Connection, writer: asyncio.StreamWriter, reply: Reply
    ) -> None:
        with self.state.answering(reply):
            if reply.wait_s > 0:
                await self._wait(reply.wait_s)
        data, headers = reply.encoded()
        writer.write(conn.send(h11.Response(status_code=reply.status, headers=headers)))
        if reply.trickle_s <= 0:
            writer.write(conn.send(h11.Data(data=data)))
        else:
            await writer.drain()
            for piece, pause_s in trickled(data, reply.trickle_s):
                await self._wait(pause_s)
                writer.write(conn.send(h11.Data(data=piece)))
                await writer.drain()
        writer.write(conn.send(h11.EndOfMessage()))
        await writer.drain()

    async def _wait(self, seconds: float) -> None:
        """Wait ``seconds``, or until the server stops."""
        assert self._stopping is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)


async def _request(
    conn: h11.Connection, reader: asyncio.StreamReader
) -> tuple[str, str, dict[str, str], bytes] | None:
    """The next request on ``conn``: its method, target, headers (names in lower case) and
    body; None when the client closed the connection."""
    request: h11.Request | None = None
    body = bytearray()
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(await reader.read(READ_SIZE))  # b"": the client closed
        elif isinstance(event, h11.Request):
            request = event
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            assert request is not None
            headers = {name.decode().lower(): value.decode() for name, value in request.headers}
            return request.method.decode(), request.target.decode(), headers, bytes(body)
        elif isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
            return None


def serve(
    host: str, port: int, latency_s: float = 0.0, min_cache_tokens: int = MIN_CACHE_TOKENS
) -> None:
    """Run the asyncio stub in the foreground until Ctrl-C (``agentyard stub-anthropic
    --asyncio``)."""
    server = AsyncStubServer(host, port, latency_s, min_cache_tokens)

    def ready() -> None:
        print(
            f"stub Anthropic API (asyncio) on {server.base_url} (Ctrl-C stops it)",
            file=sys.stderr,
            flush=True,
        )

    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever(ready)
