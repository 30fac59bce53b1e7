"""Log lines: one JSON object each (agentyard's and Celery's alike), written to the standard error
of the moment, with the ids of the trace they were logged in, never a secret; the sweeps of an
idle coordinator at DEBUG."""

from __future__ import annotations

import io
import json
import logging
import sys
import warnings
from collections.abc import Callable, Iterator
from datetime import timedelta

import fakeredis
import pytest
import structlog
from celery.app.trace import LOG_RECEIVED, LOG_SUCCESS
from celery.signals import celeryd_init
from celery.utils.log import LoggingProxy
from opentelemetry.sdk.trace import TracerProvider
from sqlalchemy import update

from bus.envelope import AgentMessage, MessageType
from bus.routing import ACK_SWEEP_TASK, SWEEP_TASK
from orchestration import Agent, Orchestrator, Workflow
from storage.ack_store import AckStore
from storage.db import session_scope
from storage.models import StepRow, utcnow
from storage.settings import Settings
from tests.conftest import TeamFactory
from tests.support import InlineBus
from workers.logging import (
    configure_logging,
    redacting_filter,
    route_library_logs,
    writes_json,
)


def test_a_line_logged_after_stderr_was_replaced_goes_to_the_new_stderr(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = Settings(log_level="INFO", log_format="json", _env_file=None)
    first = io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    configure_logging(settings, force=True)
    first.close()  # what a test harness does to the stream it captured
    later = io.StringIO()
    monkeypatch.setattr(sys, "stderr", later)

    structlog.get_logger("t").info("bus.delivered", message_id="m1")

    assert '"event": "bus.delivered"' in later.getvalue()


# -- secrets never reach a log line -----------------------------------------------------------

ANTHROPIC_KEY = "sk-ant-api03-Zq9xY8wV7uT6sR5qP4oN3mL2kJ1iH0gF-abcdefghijkl"
DB_PASSWORD = "s3cr3t-Pa55word!"
REDIS_PASSWORD = "r3dis-pa55"
FLOWER_PASSWORD = "flower-pa55word"
SECRETS = [
    ANTHROPIC_KEY,
    DB_PASSWORD,
    REDIS_PASSWORD,
    FLOWER_PASSWORD,
    "bearer-token-0123456789abcdef",
    "AKIAIOSFODNN7EXAMPLE",
    "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC",
    "hunter2-in-a-pair",
    "session-cookie-value-42",
]


class Captured:
    """What was logged to the standard error, as text and as JSON lines."""

    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self._capsys = capsys
        self._text = ""

    def getvalue(self) -> str:
        self._text += self._capsys.readouterr().err
        return self._text


@pytest.fixture
def json_lines(capsys: pytest.CaptureFixture[str]) -> Captured:
    """Log lines as JSON, set up with this process's own secrets configured."""
    settings = Settings(
        log_level="DEBUG",
        log_format="json",
        anthropic_api_key=ANTHROPIC_KEY,
        flower_basic_auth=f"admin:{FLOWER_PASSWORD}",
        _env_file=None,
    )
    configure_logging(settings, force=True)
    return Captured(capsys)


def _lines(out: Captured) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_no_secret_fed_to_the_logger_comes_out(json_lines: Captured) -> None:
    log = structlog.get_logger("t")
    log.info(
        "provider.configured",
        api_key=ANTHROPIC_KEY,
        database_url=f"postgresql+psycopg://agentyard:{DB_PASSWORD}@db.internal:5432/prod",
        broker=f"redis://:{REDIS_PASSWORD}@cache.internal:6379/0",
        headers={"Authorization": "Bearer bearer-token-0123456789abcdef", "X-Api-Key": "k" * 20},
        nested=[{"password": "hunter2-in-a-pair"}, {"cookie": "session-cookie-value-42"}],
        aws="key AKIAIOSFODNN7EXAMPLE in the text",
        github="ghp_abcdefghijklmnopqrstuvwxyz0123456789",
        jwt=SECRETS[7],
        pem=f"-----BEGIN PRIVATE KEY-----\n{SECRETS[8]}\n-----END PRIVATE KEY-----",
    )
    log.warning(f"a request failed with x-api-key={ANTHROPIC_KEY}; password: hunter2-in-a-pair")
    log.info("flower.started", note=f"basic auth for admin:{FLOWER_PASSWORD}")
    try:
        raise ConnectionError(f"could not reach redis://default:{REDIS_PASSWORD}@cache:6379")
    except ConnectionError:
        log.exception("broker.unreachable")

    written = json_lines.getvalue()
    assert len(_lines(json_lines)) == 4
    for secret in SECRETS:
        assert secret not in written, f"{secret!r} reached a log line"


def test_redaction_keeps_what_is_not_a_secret(json_lines: Captured) -> None:
    structlog.get_logger("t").info(
        "step.finished",
        input_tokens=120,
        output_tokens=40,
        max_tokens=1024,
        database_url="postgresql+psycopg://agentyard:pw123456@db.internal:5432/prod",
        model="claude-haiku-4-5",
    )

    [line] = _lines(json_lines)
    assert (line["input_tokens"], line["output_tokens"], line["max_tokens"]) == (120, 40, 1024)
    assert line["database_url"] == "postgresql+psycopg://agentyard:[REDACTED]@db.internal:5432/prod"
    assert line["model"] == "claude-haiku-4-5"


def test_celery_log_records_lose_their_secrets_too() -> None:
    configure_logging(
        Settings(anthropic_api_key=ANTHROPIC_KEY, _env_file=None),
        force=True,
    )
    record = logging.LogRecord(
        "celery.worker", logging.ERROR, __file__, 1, "Cannot connect to %s: key %s", None, None
    )
    record.args = (f"redis://:{REDIS_PASSWORD}@cache:6379//", ANTHROPIC_KEY)

    assert redacting_filter().filter(record)
    assert record.getMessage() == (
        "Cannot connect to redis://:[REDACTED]@cache:6379//: key [REDACTED]"
    )


# -- the ids of the moment ------------------------------------------------------------------------


def test_a_line_logged_in_a_span_carries_its_trace_and_span_ids(json_lines: Captured) -> None:
    provider = TracerProvider()
    with provider.get_tracer("t").start_as_current_span("step writer") as span:
        structlog.get_logger("t").info("step.finished", workflow_id="w1")

    [line] = _lines(json_lines)
    context = span.get_span_context()
    assert line["trace_id"] == f"{context.trace_id:032x}"
    assert line["span_id"] == f"{context.span_id:016x}"
    assert line["workflow_id"] == "w1"


def test_a_line_about_a_run_outside_any_span_carries_the_runs_trace_id(
    json_lines: Captured,
) -> None:
    run_id = "4bf92f35-77b3-4da6-a3ce-929d0e0e4736"
    with structlog.contextvars.bound_contextvars(workflow_id=run_id):
        structlog.get_logger("t").info("coordinator.advanced")

    [line] = _lines(json_lines)
    assert line["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert "span_id" not in line


# -- Celery's lines: the same renderer, their own level ------------------------------------------


@pytest.fixture
def library_lines() -> Iterator[Callable[[int | str], None]]:
    """Route the standard library's records (Celery's) through agentyard's handler, as a worker
    does; the root logger as it was afterwards."""
    root = logging.getLogger()
    level = root.level
    handlers: list[logging.Handler] = []

    def route(to: int | str) -> None:
        handlers.append(route_library_logs(to))

    yield route
    for handler in handlers:
        root.removeHandler(handler)
    root.setLevel(level)
    logging.captureWarnings(False)


def _received(task: str) -> None:
    """Celery's line for a task message the worker took (celery.worker.strategy)."""
    context = {"id": "6f1c", "name": task, "args": "()", "kwargs": "{}", "eta": None}
    logging.getLogger("celery.worker.strategy").info(LOG_RECEIVED, context)


def test_a_celery_line_is_one_json_object_with_its_level_and_logger(
    json_lines: Captured, library_lines: Callable[[int | str], None]
) -> None:
    library_lines("INFO")

    logging.getLogger("celery.worker.consumer.connection").info(
        "Connected to %s", f"redis://:{REDIS_PASSWORD}@cache:6379/0"
    )
    logging.getLogger("celery.worker").warning("lost a heartbeat")

    first, second = _lines(json_lines)
    assert first["event"] == "Connected to redis://:[REDACTED]@cache:6379/0"
    assert (first["level"], first["logger"]) == ("info", "celery.worker.consumer.connection")
    assert "timestamp" in first
    assert (second["event"], second["level"]) == ("lost a heartbeat", "warning")


def test_a_celery_error_carries_its_traceback_without_its_secrets(
    json_lines: Captured, library_lines: Callable[[int | str], None]
) -> None:
    library_lines("INFO")
    try:
        raise ConnectionError(f"could not reach redis://default:{REDIS_PASSWORD}@cache:6379")
    except ConnectionError:
        logging.getLogger("celery.app.trace").exception("Task agent.writer[6f1c] raised")

    [line] = _lines(json_lines)
    assert line["level"] == "error"
    assert "ConnectionError" in str(line["exception"])
    assert REDIS_PASSWORD not in json_lines.getvalue()


def test_a_line_written_while_celery_redirects_stderr_is_not_wrapped_in_a_celery_line(
    json_lines: Captured, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given Celery's redirection of the standard error to its logger (worker_redirect_stdouts)
    real = io.StringIO()
    monkeypatch.setattr(sys, "__stderr__", real)
    monkeypatch.setattr(sys, "stderr", LoggingProxy(logging.getLogger("celery.redirected")))

    # When agentyard logs
    structlog.get_logger("t").info("step.finished", step_id="s1")

    # Then its line goes whole to the stream Celery replaced
    [line] = [json.loads(text) for text in real.getvalue().splitlines()]
    assert (line["event"], line["level"], line["step_id"]) == ("step.finished", "info", "s1")


def test_agentyard_lines_keep_agentyard_s_level_and_celery_lines_the_worker_s(
    capsys: pytest.CaptureFixture[str], library_lines: Callable[[int | str], None]
) -> None:
    for agentyard_level, celery_level in (("WARNING", "INFO"), ("DEBUG", "WARNING")):
        configure_logging(
            Settings(log_level=agentyard_level, log_format="json", _env_file=None),
            force=True,
        )
        library_lines(celery_level)
        structlog.get_logger("t").debug("agentyard.debug")
        structlog.get_logger("t").info("agentyard.info")
        logging.getLogger("celery.worker").info("celery.info")

        events = [json.loads(line)["event"] for line in capsys.readouterr().err.splitlines()]
        if agentyard_level == "WARNING":
            assert events == ["celery.info"]
        else:
            assert events == ["agentyard.debug", "agentyard.info"]


def test_celery_lines_about_each_periodic_sweep_are_debug_lines(
    json_lines: Captured, library_lines: Callable[[int | str], None]
) -> None:
    # At INFO: a sweep's comings and goings are not there; an agent's task's are
    library_lines("INFO")
    _received(ACK_SWEEP_TASK)
    logging.getLogger("celery.beat").info(
        "Scheduler: Sending due task %s (%s)", SWEEP_TASK, SWEEP_TASK
    )
    logging.getLogger("celery.worker.request").info(
        "Discarding revoked task: %s[%s]",
        SWEEP_TASK,
        "6f1e",  # expired in the queue
    )
    _received("agent.writer")
    [line] = _lines(json_lines)
    assert (line["event"], line["level"]) == ("Task agent.writer[6f1c] received", "info")

    # At DEBUG: they are, as DEBUG lines
    library_lines("DEBUG")
    _received(ACK_SWEEP_TASK)
    logging.getLogger("celery.app.trace").info(
        LOG_SUCCESS, {"id": "6f1d", "name": SWEEP_TASK, "runtime": 0.01, "return_value": None}
    )
    received, succeeded = _lines(json_lines)[1:]
    assert received == {
        **received,
        "event": f"Task {ACK_SWEEP_TASK}[6f1c] received",
        "level": "debug",
    }
    assert succeeded["level"] == "debug" and SWEEP_TASK in str(succeeded["event"])


class _Program:
    """What the signal tells of a `celery worker` program starting."""

    quiet = False


def test_a_worker_logging_json_shows_no_banner_and_logs_celery_s_early_warnings(
    json_lines: Captured, library_lines: Callable[[int | str], None]
) -> None:
    worker = _Program()

    celeryd_init.send(sender="w@host", instance=worker, conf=None, options={"loglevel": "INFO"})
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("You're running the worker with superuser privileges", stacklevel=1)

    assert worker.quiet is True and writes_json()
    [line] = _lines(json_lines)
    assert (line["level"], line["logger"]) == ("warning", "py.warnings")
    assert "superuser privileges" in str(line["event"])


def test_a_worker_on_a_terminal_keeps_its_banner(
    capsys: pytest.CaptureFixture[str], library_lines: Callable[[int | str], None]
) -> None:
    configure_logging(
        Settings(log_format="console", _env_file=None),
        force=True,
    )
    worker = _Program()

    celeryd_init.send(sender="w@host", instance=worker, conf=None, options={"loglevel": "INFO"})

    assert worker.quiet is False and not writes_json()


# -- the sweeps: at INFO only when they did something ---------------------------------------------


def _swept(out: Captured, event: str) -> list[dict[str, object]]:
    return [line for line in _lines(out) if line["event"] == event]


def test_a_maintenance_sweep_that_did_nothing_is_a_debug_line(
    json_lines: Captured, inline_team: TeamFactory
) -> None:
    orc, _ = inline_team(
        Agent(id="writer", model="offline:echo"),
        workflows=(Workflow.sequence("w", ["writer"]),),
    )
    orc.maintenance().sweep()
    [idle] = _swept(json_lines, "maintenance.swept")
    assert idle["level"] == "debug" and idle["expired_leases"] == 0

    # A worker died mid-step: its lease ran out
    orc.submit("w", "the telegraph")
    with session_scope(orc.database_url) as session:
        session.exec(update(StepRow).values(lease_until=utcnow() - timedelta(seconds=1)))
    orc.maintenance().sweep()

    [busy] = _swept(json_lines, "maintenance.swept")[1:]
    assert busy["level"] == "info" and busy["expired_leases"] == 1


def test_an_acknowledgement_sweep_that_did_nothing_is_a_debug_line(
    json_lines: Captured, unit_settings: Settings
) -> None:
    fake = fakeredis.FakeRedis()
    bus = InlineBus(
        unit_settings.effective_database_url,
        acks=AckStore(fake, team="unit"),
        is_recipient=lambda name: name in {"coordinator", "planner", "writer"},
    )
    orc = Orchestrator("unit", unit_settings, bus=bus, redis=fake)
    for agent_id in ("planner", "writer"):
        orc.register_agent(Agent(id=agent_id, model="offline:echo"))
    sweeper = orc.ack_sweeper()
    assert sweeper is not None

    sweeper.sweep()
    [idle] = _swept(json_lines, "bus.acks_swept")
    assert idle["level"] == "debug" and idle["reloaded"] == 0

    # Redis lost its data while an acknowledgement was awaited
    orc.bus.publish(
        AgentMessage(
            type=MessageType.NOTIFICATION, sender="planner", to=("writer",), requires_ack=True
        )
    )
    fake.flushall()
    sweeper.sweep()

    [busy] = _swept(json_lines, "bus.acks_swept")[1:]
    assert busy["level"] == "info" and busy["reloaded"] == 1
