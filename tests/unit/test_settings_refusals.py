"""Settings that cannot work are refused when they load, naming each variable and what to write:
malformed URLs, unknown log levels, and a shared Redis without the database that goes with it."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestration import AgentyardError, InvalidSettings
from storage.settings import Settings

PG = "postgresql://agentyard@db.example/agentyard"


def load(**values: object) -> Settings:
    return Settings(_env_file=None, **values)


@pytest.mark.parametrize(
    ("redis_url", "says"),
    [
        ("redis://h:notaport", "the port of 'redis://h:notaport' is not a number"),
        ("http://cache.example:6379", "the scheme 'http' of 'http://cache.example:6379' is not"),
        ("redis//cache.example", "'redis//cache.example' is not a URL"),
        ("redis://cache.example/abc", "the database number 'abc' of"),
        ("redis:///0", "names no host"),
    ],
)
def test_a_malformed_redis_url_is_refused_when_the_settings_load(redis_url: str, says: str) -> None:
    with pytest.raises(InvalidSettings, match="AGENTYARD_REDIS_URL: ") as refused:
        load(redis_url=redis_url, database_url=PG)
    assert says in str(refused.value)
    assert "write it as redis://host:6379/0" in str(refused.value)


def test_a_redis_url_with_a_password_is_refused_without_showing_the_password() -> None:
    with pytest.raises(InvalidSettings) as refused:
        load(redis_url="redis://:hunter2@cache.example:port/0", database_url=PG)
    assert "hunter2" not in str(refused.value)
    assert "redis://:***@cache.example:port/0" in str(refused.value)


@pytest.mark.parametrize(
    "good",
    [
        "redis://127.0.0.1:6379/13",
        "rediss://:secret@cache.example:6380/0",
        "unix:///run/redis.sock?db=2",
        "redis://cache.example",
    ],
)
def test_well_formed_redis_urls_are_taken_as_given(good: str) -> None:
    assert load(redis_url=good, database_url=PG).redis_url == good


def test_a_broker_that_is_neither_redis_nor_rabbitmq_is_refused_saying_why() -> None:
    with pytest.raises(InvalidSettings, match="AGENTYARD_BROKER_URL: the scheme 'sqs'"):
        load(redis_url="redis://h/0", broker_url="sqs://key@region", database_url=PG)


def test_a_rabbitmq_broker_is_taken_with_a_redis_for_the_shared_state() -> None:
    url = "amqp://guest:guest@rabbit:5672/team-a"
    assert load(redis_url="redis://h/0", broker_url=url, database_url=PG).broker_url == url


def test_a_rabbitmq_broker_without_a_redis_is_refused_saying_the_shared_state_needs_one() -> None:
    with pytest.raises(InvalidSettings, match=r"state every worker shares .* is in Redis"):
        load(broker_url="amqp://guest@rabbit//", database_url=PG)


def test_a_rabbitmq_url_that_names_no_host_is_refused() -> None:
    with pytest.raises(InvalidSettings, match="names no host"):
        load(redis_url="redis://h/0", broker_url="amqp:///vhost", database_url=PG)


@pytest.mark.parametrize(
    ("database_url", "says"),
    [
        ("mysql://u@h/db", "the database 'mysql' of 'mysql://u@h/db' is not supported"),
        ("postgres//u@h/db", "is not a database URL"),
        ("postgresql://u@h:notaport/db", "is not a database URL"),
        ("postgresql://u@h", "names no database"),
    ],
)
def test_a_malformed_database_url_is_refused_when_the_settings_load(
    database_url: str, says: str
) -> None:
    with pytest.raises(InvalidSettings, match="AGENTYARD_DATABASE_URL: ") as refused:
        load(redis_url="redis://h/0", database_url=database_url)
    assert says in str(refused.value)


@pytest.mark.parametrize(
    "field", ["anthropic_base_url", "alert_webhook_url", "approval_webhook_url", "otel_endpoint"]
)
def test_an_http_setting_that_is_not_an_http_url_is_refused(field: str) -> None:
    with pytest.raises(InvalidSettings, match=f"AGENTYARD_{field.upper()}: .* is not a URL"):
        load(**{field: "localhost:8765"})


def test_a_shared_redis_without_a_database_url_is_refused_saying_what_to_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The user's first-day mistake: the workers share Redis and PostgreSQL, and the submitting
    # shell has only the Redis URL, so its runs would go to the embedded SQLite file.
    monkeypatch.delenv("AGENTYARD_DATABASE_URL", raising=False)
    monkeypatch.setenv("AGENTYARD_REDIS_URL", "redis://127.0.0.1:6379/13")
    with pytest.raises(InvalidSettings) as refused:
        load()
    message = str(refused.value)
    assert (
        "AGENTYARD_REDIS_URL (or AGENTYARD_BROKER_URL) is set but AGENTYARD_DATABASE_URL" in message
    )
    assert "Set AGENTYARD_DATABASE_URL to the database the workers use" in message


def test_a_database_url_without_a_redis_url_is_refused_saying_what_to_set() -> None:
    with pytest.raises(InvalidSettings, match="Set AGENTYARD_REDIS_URL to the Redis the workers"):
        load(database_url=PG)


def test_the_embedded_default_takes_neither_and_the_in_process_broker_needs_no_database(
    tmp_path: Path,
) -> None:
    assert load(home=tmp_path).redis_url is None
    assert load(redis_url="memory://").redis_url == "memory://"


@pytest.mark.parametrize("level", ["LOUD", "verbose", ""])
def test_an_unknown_log_level_is_refused(level: str) -> None:
    with pytest.raises(InvalidSettings, match="AGENTYARD_LOG_LEVEL: must be one of DEBUG, INFO"):
        load(log_level=level)


def test_a_log_level_is_taken_in_any_case() -> None:
    assert load(log_level="debug").log_level == "DEBUG"


def test_every_setting_that_cannot_work_is_named_on_its_own_line() -> None:
    with pytest.raises(InvalidSettings) as refused:
        load(metrics_port="abc", log_level="LOUD", anthropic_api_key=5)
    lines = str(refused.value).splitlines()
    assert lines[0] == "invalid settings, fix the environment or the .env file:"
    assert {line.split(":")[0].strip() for line in lines[1:]} == {
        "AGENTYARD_METRICS_PORT",
        "AGENTYARD_LOG_LEVEL",
        "AGENTYARD_ANTHROPIC_API_KEY",
    }
    assert "(got 'abc')" in str(refused.value)


def test_a_secret_that_cannot_be_read_is_named_but_not_shown(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AGENTYARD_FLOWER_BASIC_AUTH", "admin:s3cret")
    monkeypatch.setenv("AGENTYARD_METRICS_PORT", "70000")
    with pytest.raises(InvalidSettings) as refused:
        load(anthropic_api_key=["sk-ant-should-not-show"])
    assert "sk-ant-should-not-show" not in str(refused.value)
    assert "AGENTYARD_ANTHROPIC_API_KEY" in str(refused.value)


def test_invalid_settings_are_an_agentyard_error_and_a_value_error() -> None:
    with pytest.raises(AgentyardError):
        load(task_time_limit_s=3600, visibility_timeout_s=3600)
    assert issubclass(InvalidSettings, ValueError)


def test_a_variable_set_to_nothing_counts_as_unset(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("AGENTYARD_REDIS_URL", "")
    monkeypatch.setenv("AGENTYARD_DATABASE_URL", "")
    assert load(home=tmp_path).database_url is None
