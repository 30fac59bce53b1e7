"""agentyard's logging in Celery's worker and beat programs (see ``workers/logging.py``): it takes
Celery's logging set-up over, so that Celery's records become agentyard's lines at the worker's
``--loglevel``; and a worker logging JSON shows no banner, logs what it would have printed, and
says its shutdown as a line. Importing this module connects it to Celery's signals (the Celery
app of ``workers/celery_app.py`` does)."""

from __future__ import annotations

import logging
import weakref
from collections.abc import Mapping
from typing import Any

import structlog
from celery.signals import (
    celeryd_after_setup,
    celeryd_init,
    setup_logging,
    worker_ready,
    worker_shutting_down,
)

from workers.logging import route_library_logs, writes_json

log = structlog.get_logger(__name__)

_programs: weakref.WeakSet[Any] = weakref.WeakSet()  # the `celery worker` programs of this process


def _take_over_celery_logging(loglevel: int | str | None = None, **_: object) -> None:
    """Celery is setting its logging up (worker and beat): the records go through agentyard's
    handler instead, at ``--loglevel``. A receiver of this signal means Celery adds no handler
    and does not redirect the standard output."""
    route_library_logs(loglevel or logging.WARNING)


def _worker_starting(
    instance: Any = None, options: Mapping[str, Any] | None = None, **_: object
) -> None:
    """A `celery worker` program is starting: log through agentyard's handler already (Celery
    warns before it sets logging up, e.g. about running as root), and in JSON, no banner."""
    route_library_logs((options or {}).get("loglevel") or logging.WARNING)
    if instance is None:
        return
    _programs.add(instance)
    if writes_json():
        instance.quiet = True


def _worker_set_up(instance: Any = None, conf: Any = None, **_: object) -> None:
    if instance not in _programs:
        return
    if writes_json() and conf is not None and conf.worker_redirect_stdouts:
        instance.app.log.redirect_stdouts(conf.worker_redirect_stdouts_level)
    log.info(
        "worker.started",
        hostname=instance.hostname,
        queues=sorted(instance.app.amqp.queues.consume_from or ()),
        concurrency=instance.concurrency,
        pool=getattr(instance.pool_cls, "__module__", str(instance.pool_cls)),
    )


def _worker_ready(sender: Any = None, **_: object) -> None:
    """In JSON, Celery's SIGTERM and SIGQUIT handlers again without their plain-text line
    (``_worker_shutting_down`` says it). Celery installs them after its last signal before this."""
    worker = getattr(sender, "controller", None)
    if not writes_json() or worker not in _programs:
        return
    from celery.apps import worker as program

    try:
        program.install_worker_term_handler(worker, verbose=False)
        program.install_worker_term_hard_handler(worker, verbose=False)
    except TypeError:  # a Celery without `verbose`: its line stays
        log.debug("worker.shutdown_line_kept")


def _worker_shutting_down(sig: str = "", how: str = "", exitcode: int = 0, **_: object) -> None:
    if _programs:
        log.info("worker.shutting_down", signal=sig, how=how.lower(), exitcode=exitcode)


setup_logging.connect(_take_over_celery_logging, weak=False)
celeryd_init.connect(_worker_starting, weak=False)
celeryd_after_setup.connect(_worker_set_up, weak=False)
worker_ready.connect(_worker_ready, weak=False)
worker_shutting_down.connect(_worker_shutting_down, weak=False)
