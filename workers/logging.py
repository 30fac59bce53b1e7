"""structlog set-up: JSON lines when not on a terminal, with the ids bound by each task, the
trace and span of the moment, and no secrets (``workers.redaction``)."""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog
from celery.signals import after_setup_logger, after_setup_task_logger
from opentelemetry import trace

from storage.settings import Settings
from workers.redaction import RedactingFilter, Redactor
from workers.tracing import trace_id_of

_configured = False
_redactor = Redactor()


class _CurrentStderr:
    """Writes each line to whatever ``sys.stderr`` is when the line is logged, not to the one of
    the moment logging was set up (a test harness, or a daemon, may have replaced or closed
    that one)."""

    def msg(self, message: str) -> None:
        print(message, file=sys.stderr, flush=True)

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


def known_secrets(settings: Settings) -> list[str]:
    """The secrets this process was configured with, to be removed wherever they show up."""
    found: list[str] = []
    if settings.anthropic_api_key is not None:
        found.append(settings.anthropic_api_key.get_secret_value())
    if settings.flower_basic_auth is not None:
        for pair in settings.flower_basic_auth.get_secret_value().split(","):
            found.append(pair.partition(":")[2])
    return found


def redacting_filter() -> RedactingFilter:
    """A filter for standard logging handlers (Celery's) that removes the same secrets."""
    return RedactingFilter(lambda: _redactor)


def _redact_handlers(logger: logging.Logger | None = None, **_: object) -> None:
    """Celery set up a logger's handlers: they remove secrets too."""
    for handler in (logger or logging.getLogger()).handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(redacting_filter())


after_setup_logger.connect(_redact_handlers, weak=False)
after_setup_task_logger.connect(_redact_handlers, weak=False)


def configure_logging(settings: Settings, force: bool = False) -> None:
    global _configured, _redactor
    if _configured and not force:
        return
    _redactor = Redactor(known_secrets(settings))
    level = logging.getLevelNamesMapping().get(settings.log_level.upper(), logging.INFO)
    as_json = settings.log_format == "json" or (
        settings.log_format == "auto" and not sys.stderr.isatty()
    )
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if as_json else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            add_trace_ids,
            structlog.processors.format_exc_info,
            _redactor,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=_current_stderr,
        cache_logger_on_first_use=True,
    )
    _configured = True
