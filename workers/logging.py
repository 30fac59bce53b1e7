"""structlog set-up: JSON lines when not on a terminal, with the ids bound by each task."""

from __future__ import annotations

import logging
import sys

import structlog

from storage.settings import Settings

_configured = False


class _CurrentStderr:
    """Writes each line to whatever ``sys.stderr`` is when the line is logged, not to the one of
    the moment logging was set up (a test harness, or a daemon, may have replaced or closed
    that one)."""

    def msg(self, message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    log = debug = info = warning = warn = error = critical = exception = fatal = msg


def _current_stderr(*_args: object) -> _CurrentStderr:
    return _CurrentStderr()


def configure_logging(settings: Settings, force: bool = False) -> None:
    global _configured
    if _configured and not force:
        return
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
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=_current_stderr,
        cache_logger_on_first_use=True,
    )
    _configured = True
