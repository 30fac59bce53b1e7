"""The HTTP endpoint Prometheus scrapes: one registry's /metrics, served on a daemon thread.

Started once per process, as a worker starts; a port that cannot be bound is a warning, never a
reason for the worker to stop (the work matters more than the figures about it).

Why at Celery's ``worker_init``: it is sent once, in the worker's main process, before the pool
starts, for ``agentyard worker`` and plain ``celery -A team worker`` alike, and never in a process
that only submits work. Agent workers run the threads pool, whose tasks run in that very process,
so the step counters they feed are the ones the endpoint serves. The prefork pool would count in
its child processes, out of the endpoint's sight: the worker warns of it.
"""

from __future__ import annotations

from collections.abc import Callable
from wsgiref.simple_server import WSGIServer

import structlog
from celery import Celery
from celery.signals import worker_init
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


class ServeAsWorkersStart:
    """Calls ``serve`` in the main process of each worker of ``app`` as it starts (Celery's
    ``worker_init``). Connected weakly: it lasts as long as its owner keeps it."""

    def __init__(self, app: Celery, serve: Callable[[], object]) -> None:
        self._app = app
        self._serve = serve
        worker_init.connect(self._on_worker_init)

    def _on_worker_init(self, sender: object = None, **_: object) -> None:
        if getattr(sender, "app", None) is not self._app:
            return  # another app's worker
        if "prefork" in str(getattr(sender, "pool_cls", "")):
            log.warning(
                "metrics.prefork_pool",
                advice="step counts are kept in the pool's child processes, which /metrics does "
                "not see; run agent workers with --pool threads (the default) or solo",
            )
        self._serve()
