"""The HTTP endpoint Prometheus scrapes: one registry's /metrics, served on a daemon thread.

Started once per process, as a worker starts; a port that cannot be bound is a warning, never a
reason for the worker to stop (the work matters more than the figures about it).

Started as each worker starts (``workers.lifecycle``): once, in the worker's main process, and
never in a process that only submits work. Agent workers run the threads pool, whose tasks run
in that very process, so the step counters they feed are the ones the endpoint serves. The
prefork pool would count in its child processes, out of the endpoint's sight: the worker warns
of it.
"""

from __future__ import annotations

from wsgiref.simple_server import WSGIServer

import structlog
from prometheus_client import CollectorRegistry, start_http_server

log = structlog.get_logger(__name__)

ADDRESS = "0.0.0.0"  # every interface: Prometheus scrapes pods from outside


class MetricsEndpoint:
    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry
        self._server: WSGIServer | None = None
        self._tried = False
        self.port: int | None = None

    def start(self, port: int, address: str = ADDRESS) -> int | None:
        """Serve /metrics on ``port`` (0: any free port), on a daemon thread. Returns the port
        it listens on, or None when it could not bind (logged with what to do). Only the first
        call does anything; later ones return what it returned."""
        if self._tried:
            return self.port
        self._tried = True
        try:
            server, _thread = start_http_server(port, addr=address, registry=self._registry)
        except OSError as exc:
            log.warning(
                "metrics.port_unavailable",
                port=port,
                error=str(exc),
                advice=(
                    f"this worker serves no /metrics (port {port} is taken or not allowed) and "
                    "keeps running; set AGENTYARD_METRICS_PORT or `agentyard worker "
                    "--metrics-port` to a free port, or 0 for any free one"
                ),
            )
            return None
        self._server = server
        self.port = int(server.server_port)
        log.info("metrics.serving", port=self.port, address=address, path="/metrics")
        return self.port

    def stop(self) -> None:
        """Stop serving and free the port (a worker never needs to; tests do)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
