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
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import structlog
from celery import Celery
from pydantic import SecretStr

from storage.errors import ConfigurationError
from storage.settings import Settings

log = structlog.get_logger(__name__)

AUTH_VARIABLE = "FLOWER_BASIC_AUTH"  # Flower's own name for its basic_auth option


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


def flower_launch(settings: Settings, port: int, address: str) -> FlowerLaunch:
    """Flower's command line and environment for ``settings``, serving on ``address:port``."""
    argv = ["flower", f"--port={port}", f"--address={address}", "--enable_events=True"]
    entries = basic_auth_entries(settings.flower_basic_auth)
    if entries:
        return FlowerLaunch(argv, {AUTH_VARIABLE: ",".join(entries)})
    where = f"{address or '0.0.0.0'}:{port}"
    return FlowerLaunch(
        argv,
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
