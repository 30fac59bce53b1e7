"""Flower for a team: what it starts with, and starting it on the team's own Celery app.

Flower runs in the ``agentyard flower`` process, on the Celery app every producer and worker of
the team is built with (``workers.celery_app``): the same broker URL and the same transport
options (priority steps, separator, key prefix), so its Broker page counts the Redis lists the
workers really read, and its control and event connections reach the team's workers and no
other team's. It asks the workers to send events (they do anyway).

Basic auth comes from ``AGENTYARD_FLOWER_BASIC_AUTH`` (``Settings.flower_basic_auth``). Flower
reads it from its ``FLOWER_BASIC_AUTH`` environment variable, set in this process only: never
on a command line, which ``ps`` shows to every user of the machine. Without it Flower asks for
no password, and a warning says so.

On RabbitMQ, Flower's Broker page reads the queues from RabbitMQ's management API
(``AGENTYARD_FLOWER_BROKER_API``, by default the broker's host on port 15672 with its user and
password), passed the same way as ``FLOWER_BROKER_API``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from urllib.parse import quote, unquote, urlsplit

import structlog
from celery import Celery
from pydantic import SecretStr

from bus.brokers import RABBITMQ, broker_for
from storage.errors import ConfigurationError
from storage.settings import Settings

log = structlog.get_logger(__name__)

AUTH_VARIABLE = "FLOWER_BASIC_AUTH"  # Flower's own name for its basic_auth option
BROKER_API_VARIABLE = "FLOWER_BROKER_API"  # and for its broker_api one (RabbitMQ's HTTP API)
MANAGEMENT_PORT = 15672  # RabbitMQ management plugin's default


@dataclass(frozen=True)
class FlowerLaunch:
    """How Flower is started: ``argv`` (Celery's command line, nothing secret in it), the
    ``FLOWER_*`` variables it reads from its own environment, and a warning to log, if any."""

    argv: list[str]
    environ: dict[str, str] = field(default_factory=dict, repr=False)
    warning: str | None = None

    @property
    def asks_for_password(self) -> bool:
        return AUTH_VARIABLE in self.environ


def basic_auth_entries(secret: SecretStr | None) -> list[str]:
    """The ``user:password`` entries of ``AGENTYARD_FLOWER_BASIC_AUTH`` (comma-separated), with
    the blanks around them removed; none for a setting that is unset or blank (as a compose file
    passes an unset variable on). An entry that is not ``user:password`` is refused; the error
    says which one by position, never what it holds."""
    value = secret.get_secret_value().strip() if secret is not None else ""
    if not value:
        return []
    entries = [entry for entry in (part.strip() for part in value.split(",")) if entry]
    if not entries:
        raise ConfigurationError(
            "AGENTYARD_FLOWER_BASIC_AUTH holds commas and no user:password: give it "
            "user:password (several separated by commas), or unset it to start Flower without "
            "a password"
        )
    for position, entry in enumerate(entries, start=1):
        user, colon, password = entry.partition(":")
        if not (user and colon and password):
            raise ConfigurationError(
                f"AGENTYARD_FLOWER_BASIC_AUTH: entry {position} of {len(entries)} is not "
                "user:password (a user name, a colon, then a password, neither empty; entries "
                "are separated by commas); fix it and start Flower again"
            )
    return entries


def broker_api(settings: Settings) -> str | None:
    """Where Flower reads RabbitMQ's queues (its management API), None on Redis: the setting,
    or the broker's own host, user and password on the management plugin's port."""
    broker = settings.effective_broker_url
    if broker_for(broker) is not RABBITMQ:
        return None
    if settings.flower_broker_api is not None:
        return settings.flower_broker_api.get_secret_value()
    parts = urlsplit(broker or "")
    user = unquote(parts.username or "guest")
    password = unquote(parts.password or "guest")
    credentials = f"{quote(user, safe='')}:{quote(password, safe='')}"
    return f"http://{credentials}@{parts.hostname}:{MANAGEMENT_PORT}/api/"


def flower_launch(settings: Settings, port: int, address: str) -> FlowerLaunch:
    """Flower's command line and environment for ``settings``, serving on ``address:port``."""
    argv = ["flower", f"--port={port}", f"--address={address}", "--enable_events=True"]
    environ = {}
    api = broker_api(settings)
    if api is not None:  # it holds a password: in the environment, never on the command line
        environ[BROKER_API_VARIABLE] = api
    entries = basic_auth_entries(settings.flower_basic_auth)
    if entries:
        return FlowerLaunch(argv, {**environ, AUTH_VARIABLE: ",".join(entries)})
    where = f"{address or '0.0.0.0'}:{port}"
    return FlowerLaunch(
        argv,
        environ,
        warning=(
            f"Flower starts without authentication: whoever reaches {where} sees every worker "
            "and task and can revoke tasks or shut workers down. Set AGENTYARD_FLOWER_BASIC_AUTH "
            "to user:password (several separated by commas), or keep Flower on a private network"
        ),
    )


def run_flower(app: Celery, launch: FlowerLaunch) -> None:
    """Serve Flower on ``app`` until it is stopped (SIGTERM, Ctrl-C)."""
    if launch.warning:
        log.warning("flower.no_authentication", message=launch.warning)
    # Flower reads FLOWER_* variables from its own process; this one is Flower's process.
    os.environ.update(launch.environ)
    app.start(launch.argv)
