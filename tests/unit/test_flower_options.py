"""`agentyard flower`: its basic auth comes from the settings and never shows on a command line,
it asks for events, and Flower reads the broker the way the team's workers lay it out."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from flower.command import apply_env_options
from flower.options import default_options
from flower.utils.broker import Broker
from pydantic import SecretStr
from structlog.testing import capture_logs

from bus.broker_view import BrokerView
from orchestration import Agent, Orchestrator, Settings
from storage.errors import ConfigurationError
from workers.flower import (
    AUTH_VARIABLE,
    BROKER_API_VARIABLE,
    basic_auth_entries,
    flower_launch,
    run_flower,
)

PASSWORDS = "ops:s3cret-one, audit:s3cret:two"


def _settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)


class _App:
    """Stands in for the Celery app: records what Flower would be started with."""

    def __init__(self) -> None:
        self.argv: list[str] | None = None
        self.auth_seen: str | None = None

    def start(self, argv: list[str]) -> None:
        self.argv = argv
        self.auth_seen = os.environ.get(AUTH_VARIABLE)


@pytest.fixture(autouse=True)
def no_passwords_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Neither name of the setting in this process's environment; each restored afterwards (or
    removed, if run_flower set it)."""
    for name in ("AGENTYARD_FLOWER_BASIC_AUTH", AUTH_VARIABLE):
        monkeypatch.setenv(name, "placeholder")
        monkeypatch.delenv(name)
    yield


def test_the_passwords_reach_flower_through_its_environment_and_never_its_command_line() -> None:
    launch = flower_launch(_settings(flower_basic_auth=PASSWORDS), 5555, "0.0.0.0")
    app = _App()

    run_flower(app, launch)  # type: ignore[arg-type]

    assert app.argv == ["flower", "--port=5555", "--address=0.0.0.0", "--enable_events=True"]
    assert "s3cret" not in " ".join(app.argv)
    assert app.auth_seen == "ops:s3cret-one,audit:s3cret:two"
    assert launch.asks_for_password and launch.warning is None
    assert "s3cret" not in repr(launch)


def test_without_basic_auth_flower_starts_open_and_a_warning_says_so() -> None:
    app = _App()

    with capture_logs() as logs:
        run_flower(app, flower_launch(_settings(), 5555, "0.0.0.0"))  # type: ignore[arg-type]

    assert app.argv is not None and app.auth_seen is None
    [warning] = [entry for entry in logs if entry["event"] == "flower.no_authentication"]
    assert warning["log_level"] == "warning"
    assert "without authentication" in warning["message"]
    assert "0.0.0.0:5555" in warning["message"]
    assert "AGENTYARD_FLOWER_BASIC_AUTH" in warning["message"]


def test_flowers_own_variable_name_is_read_as_the_setting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(AUTH_VARIABLE, "ops:from-flower-name")

    assert flower_launch(_settings(), 5555, "127.0.0.1").asks_for_password


@pytest.mark.parametrize(
    ("value", "position"),
    [("ops", "entry 1 of 1"), ("ops:pw,:nouser", "entry 2 of 2"), ("ops:", "entry 1 of 1")],
)
def test_an_entry_that_is_not_user_colon_password_is_refused_without_showing_it(
    value: str, position: str
) -> None:
    with pytest.raises(ConfigurationError) as refused:
        basic_auth_entries(SecretStr(value))

    message = str(refused.value)
    assert f"AGENTYARD_FLOWER_BASIC_AUTH: {position} is not user:password" in message
    assert "pw" not in message and "nouser" not in message


def test_a_setting_of_commas_without_any_entry_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="holds commas and no user:password"):
        basic_auth_entries(SecretStr(" , "))


def test_a_blank_setting_means_no_password_as_an_unset_one_does() -> None:
    # (a compose file's ${AGENTYARD_FLOWER_BASIC_AUTH:-} passes an unset variable on as "")
    launch = flower_launch(_settings(flower_basic_auth="  "), 5555, "127.0.0.1")
    assert not launch.asks_for_password and launch.warning is not None


def test_flower_reads_the_passwords_as_the_separate_credentials_it_compares(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given the environment `agentyard flower` gives Flower
    launch = flower_launch(_settings(flower_basic_auth=PASSWORDS), 5555, "127.0.0.1")
    for name, value in launch.environ.items():
        monkeypatch.setenv(name, value)
    before = default_options.basic_auth
    try:
        # When Flower (2.x) reads its FLOWER_* variables
        apply_env_options()
        # Then it holds each user:password on its own, as a browser's Basic header decodes to
        assert default_options.basic_auth == ["ops:s3cret-one", "audit:s3cret:two"]
    finally:
        default_options.basic_auth = before


def test_flower_counts_the_same_redis_lists_the_workers_use(unit_settings: Settings) -> None:
    # Given a team whose keys carry a prefix (several teams on one Redis)
    settings = unit_settings.model_copy(
        update={"redis_url": "redis://127.0.0.1:6379/0", "redis_key_prefix": "team-a:"}
    )
    orc = Orchestrator("flower-broker", settings)
    orc.register_agent(Agent(id="writer", model="offline:echo"))
    app = orc.celery

    # When Flower builds its broker view from the team's app, as its Broker page does
    broker = Broker(
        "redis://127.0.0.1:6379/0",
        broker_options=app.conf.broker_transport_options,
        broker_use_ssl=app.conf.broker_use_ssl,
    )

    # Then it reads every priority band of a queue under the team's prefix, like the workers
    flower_keys = [
        broker.broker_prefix + broker._q_for_pri("agent.writer", band)
        for band in broker.priority_steps
    ]
    assert flower_keys == BrokerView(None, "team-a:").band_keys("agent.writer")  # type: ignore[arg-type]
    assert flower_keys[:2] == ["team-a:agent.writer", "team-a:agent.writer:1"]


RABBIT = {
    "redis_url": "redis://127.0.0.1:6379/0",
    "database_url": "postgresql://u@h/db",
    "broker_url": "amqp://ops:p%40ss@rabbit.internal:5672/team-a",
}


def test_on_rabbitmq_flower_reads_the_queues_from_the_management_api_of_the_brokers_host() -> None:
    launch = flower_launch(_settings(**RABBIT), 5555, "127.0.0.1")

    assert launch.environ[BROKER_API_VARIABLE] == "http://ops:p%40ss@rabbit.internal:15672/api/"
    assert "p%40ss" not in " ".join(launch.argv) and "p@ss" not in " ".join(launch.argv)


def test_the_management_api_flower_reads_can_be_set_and_is_a_secret() -> None:
    api = "https://watch:pw@mgmt.internal/api/"
    settings = _settings(**RABBIT, flower_broker_api=api)

    assert flower_launch(settings, 5555, "127.0.0.1").environ[BROKER_API_VARIABLE] == api
    assert "pw@" not in repr(settings)


def test_on_redis_flower_is_given_no_management_api() -> None:
    assert BROKER_API_VARIABLE not in flower_launch(_settings(), 5555, "127.0.0.1").environ
