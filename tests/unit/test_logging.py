"""Log lines: written to the standard error of the moment, with the ids of the trace they were
logged in, and never a secret."""

from __future__ import annotations

import io
import json
import logging
import sys

import pytest
import structlog
from opentelemetry.sdk.trace import TracerProvider

from storage.settings import Settings
from workers.logging import configure_logging, redacting_filter


def test_a_line_logged_after_stderr_was_replaced_goes_to_the_new_stderr(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = Settings(log_level="INFO", log_format="json", _env_file=None)  # type: ignore[call-arg]
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
    )  # type: ignore[call-arg]
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
        Settings(anthropic_api_key=ANTHROPIC_KEY, _env_file=None),  # type: ignore[call-arg]
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
