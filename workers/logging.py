"""Log lines: one per event, JSON when not on a terminal (``AGENTYARD_LOG_FORMAT``), with the ids
bound by each task, the trace and span of the moment, and no secrets (``workers.redaction``).

Two sources, one renderer, one stream (the standard error of the moment):
- agentyard's own lines (structlog), kept from ``AGENTYARD_LOG_LEVEL`` up;
- the standard library's records (Celery's, kombu's, Python's warnings) in a worker or beat
  process, kept from the worker's ``--loglevel`` up. agentyard takes Celery's logging set-up over
  (its ``setup_logging`` signal), so Celery neither formats lines its own way nor wraps what
  agentyard writes in its ``[...: WARNING/MainProcess]`` prefix.

A worker logging JSON writes JSON only (the hooks in ``workers/celery_programs.py``): no banner
(a ``worker.started`` line says what it said), stray prints logged as lines
(``worker_redirect_stdouts``), and its warm and cold shutdowns on SIGTERM and SIGQUIT as a
``worker.shutting_down`` line instead of Celery's plain text. On a terminal the lines are for
people: the banner stays, and so do prints.

Celery's lines for each run of the periodic sweeps (beat's "Sending due task", the worker's
"received", "succeeded" and "Discarding revoked task" for a run that expired in the queue) are
DEBUG lines: with beat they came twice a second, whether the sweeps did anything or not.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any, TextIO

import structlog
from celery.utils.log import LoggingProxy
from opentelemetry import trace

from bus.routing import ACK_SWEEP_TASK, SWEEP_TASK
from storage.settings import Settings
from workers.redaction import RedactingFilter, Redactor
from workers.tracing import trace_id_of

log = structlog.get_logger(__name__)

_configured = False
_redactor = Redactor()
_as_json = not sys.stderr.isatty()
_renderer: structlog.typing.Processor = structlog.processors.JSONRenderer()
_handler: _LineHandler | None = None
_write_lock = threading.Lock()

# Celery's loggers of a task's comings and goings (received, succeeded, discarded as expired),
# and of beat's sending.
_TASK_LINE_LOGGERS = frozenset(
    {"celery.worker.strategy", "celery.app.trace", "celery.worker.request", "celery.beat"}
)
PERIODIC_TASKS = frozenset({SWEEP_TASK, ACK_SWEEP_TASK})


def _stream() -> TextIO | None:
    """The standard error of the moment (a test harness or a daemon may have replaced the one
    logging was set up with), or the one Celery's redirection replaced."""
    stream = sys.stderr
    if isinstance(stream, LoggingProxy):  # its lines would come back here as records
        return sys.__stderr__
    return stream


def write_line(text: str) -> None:
    """Write one line whole: lines of several threads never mix."""
    with _write_lock:
        stream = _stream()
        if stream is None:
            return
        stream.write(text + "\n")
        stream.flush()


class _CurrentStderr:
    """structlog's logger: each line to ``write_line``."""

    def msg(self, message: str) -> None:
        write_line(message)

    log = debug = info = warning = warn = error = critical = exception = fatal = msg


def _current_stderr(*_args: object) -> _CurrentStderr:
    return _CurrentStderr()


def add_trace_ids(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """The trace and span the line was logged in; outside any span, the trace of the run the
    line is about (a run's trace id is known from its id)."""
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        event_dict.setdefault("trace_id", f"{context.trace_id:032x}")
        event_dict.setdefault("span_id", f"{context.span_id:016x}")
    elif isinstance(event_dict.get("workflow_id"), str):
        event_dict.setdefault("trace_id", f"{trace_id_of(event_dict['workflow_id']):032x}")
    return event_dict


def _exception_of_record(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """A record's traceback, as the redacting filter left it (already cleaned, as text)."""
    record = event_dict.get("_record")
    if record is not None and record.exc_text and "exc_info" not in event_dict:
        event_dict["exception"] = record.exc_text
    return event_dict


def known_secrets(settings: Settings) -> list[str]:
    """The secrets this process was configured with, to be removed wherever they show up."""
    found: list[str] = []
    if settings.anthropic_api_key is not None:
        found.append(settings.anthropic_api_key.get_secret_value())
    if settings.flower_basic_auth is not None:
        for pair in settings.flower_basic_auth.get_secret_value().split(","):
            found.append(pair.partition(":")[2])
    if settings.provenance_key is not None:
        found.append(settings.provenance_key.get_secret_value())
    return found


def redacting_filter() -> RedactingFilter:
    """A filter for standard logging handlers (Celery's) that removes the same secrets."""
    return RedactingFilter(lambda: _redactor)


class PeriodicTaskLines(logging.Filter):
    """Makes Celery's INFO lines about each run of a periodic task DEBUG lines, and drops them
    unless their logger keeps DEBUG. The task says itself when a run did something."""

    def __init__(self, tasks: Iterable[str] = PERIODIC_TASKS) -> None:
        super().__init__()
        self._tasks = frozenset(tasks)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.INFO or record.name not in _TASK_LINE_LOGGERS:
            return True
        args = record.args
        if isinstance(args, Mapping):  # "Task %(name)s[%(id)s] received", "... succeeded in"
            names = [args.get("name")]
        elif isinstance(args, tuple):  # "Discarding revoked task: %s[%s]", beat's "%s (%s)"
            names = list(args)
        else:
            return True
        if not any(isinstance(name, str) and name in self._tasks for name in names):
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


class _LineHandler(logging.Handler):
    """The standard library's records, rendered as agentyard's lines and written with them."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            write_line(self.format(record))
        except Exception:
            self.handleError(record)


def _formatter() -> structlog.stdlib.ProcessorFormatter:
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.stdlib.add_logger_name,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            add_trace_ids,
            _exception_of_record,
            structlog.processors.format_exc_info,
            _redactor,
        ],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, _renderer],
    )


def route_library_logs(level: int | str) -> logging.Handler:
    """Render the standard library's records (Celery's...) from ``level`` up as agentyard's
    lines, through one handler on the root logger (handlers already there stay). Idempotent."""
    global _handler
    if _handler is None:
        _handler = _LineHandler()
        _handler.addFilter(PeriodicTaskLines())  # first: it reads the record's arguments
        _handler.addFilter(redacting_filter())
    _handler.setFormatter(_formatter())
    root = logging.getLogger()
    if _handler not in root.handlers:
        root.addHandler(_handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    logging.captureWarnings(True)
    return _handler


def configure_logging(settings: Settings, force: bool = False) -> None:
    """Set agentyard's lines up from ``settings`` (level, format, the secrets to remove); once
    per process unless ``force``."""
    global _configured, _redactor, _as_json, _renderer
    if _configured and not force:
        return
    _redactor = Redactor(known_secrets(settings))
    level = logging.getLevelNamesMapping().get(settings.log_level.upper(), logging.INFO)
    _as_json = settings.log_format == "json" or (
        settings.log_format == "auto" and not sys.stderr.isatty()
    )
    _renderer = structlog.processors.JSONRenderer() if _as_json else structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            add_trace_ids,
            structlog.processors.format_exc_info,
            _redactor,
            _renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=_current_stderr,
        # Not cached: a module's logger used before this set-up (or before a later one, as the
        # demo's) would keep the old level and format for good. It costs ~8 µs a written line.
        cache_logger_on_first_use=False,
    )
    if _handler is not None:
        _handler.setFormatter(_formatter())
    _configured = True


def writes_json() -> bool:
    """Whether this process's lines are JSON (``AGENTYARD_LOG_FORMAT`` json, or auto off a
    terminal): a program started from here then leaves its banner out (`celery --quiet`)."""
    return _as_json
