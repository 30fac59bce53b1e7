"""What a team does in each of its workers as the worker starts, is ready, and stops.

Celery's signals, taken for the team's own app only (a process may hold several apps):

- ``starting`` at ``worker_init``: in the worker's main process, once its queues are chosen and
  before its pool starts or it takes a message, for ``agentyard worker`` and plain
  ``celery -A team worker`` alike; never in a process that only submits work. What a worker
  builds here, its first message does not wait for.
- ``ready`` at ``worker_ready``: the worker consumes.
- ``stopping`` at ``worker_shutdown``: the worker is about to exit.

A hook that raises is logged and the worker goes on: none of them is worth not working for.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog
from celery import Celery
from celery.signals import worker_init, worker_ready, worker_shutdown

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """What a hook knows of the worker it runs in."""

    queues: frozenset[str]  # the queues it consumes
    concurrency: int
    pool: str  # the pool class, e.g. "celery.concurrency.thread:TaskPool"

    @property
    def prefork(self) -> bool:
        return "prefork" in self.pool


Hook = Callable[[WorkerInfo], None]


class WorkerLifecycle:
    """Calls the hooks given at each worker of ``app``. Connected weakly: it lasts as long as its
    owner keeps it."""

    def __init__(
        self,
        app: Celery,
        *,
        starting: list[Hook] | None = None,
        ready: list[Hook] | None = None,
        stopping: list[Hook] | None = None,
    ) -> None:
        self._app = app
        self._hooks = {"starting": starting or [], "ready": ready or [], "stopping": stopping or []}
        self._info: WorkerInfo | None = None
        worker_init.connect(self._on_init)
        worker_ready.connect(self._on_ready)
        worker_shutdown.connect(self._on_shutdown)

    def _on_init(self, sender: Any = None, **_: object) -> None:
        if getattr(sender, "app", None) is not self._app:
            return  # another app's worker
        self._info = _info_of(sender)
        self._call("starting")

    def _on_ready(self, sender: Any = None, **_: object) -> None:
        if getattr(sender, "app", None) is self._app and self._info is not None:
            self._call("ready")

    def _on_shutdown(self, sender: Any = None, **_: object) -> None:
        if getattr(sender, "app", None) is self._app and self._info is not None:
            self._call("stopping")

    def _call(self, moment: str) -> None:
        assert self._info is not None
        for hook in self._hooks[moment]:
            try:
                hook(self._info)
            except Exception as exc:
                log.warning(
                    "worker.hook_failed",
                    moment=moment,
                    hook=getattr(hook, "__qualname__", repr(hook)),
                    error=str(exc),
                    error_type=type(exc).__name__,
                )


def _info_of(worker: Any) -> WorkerInfo:
    # The queues `-Q` chose (consume_from), or every queue the app declares.
    queues = worker.app.amqp.queues.consume_from or worker.app.amqp.queues
    concurrency = getattr(worker, "concurrency", None)
    return WorkerInfo(
        queues=frozenset(str(name) for name in queues),
        concurrency=concurrency if isinstance(concurrency, int) and concurrency > 0 else 1,
        pool=str(getattr(worker, "pool_cls", "")),
    )
