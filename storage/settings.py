"""agentyard's settings: the one module that reads the environment.

Every value comes from an ``AGENTYARD_*`` variable (or a ``.env`` file). Nothing else in the
project calls ``os.environ`` for configuration; components are handed a ``Settings``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from storage import url_checks
from storage.errors import InvalidSettings

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
MIN_PROVENANCE_KEY = 32  # characters of AGENTYARD_PROVENANCE_KEY


class Settings(BaseSettings):
    """Where agentyard finds its servers and how it treats them."""

    model_config = SettingsConfigDict(
        env_prefix="AGENTYARD_",
        env_file=".env",
        extra="ignore",
        frozen=True,
        # `AGENTYARD_DATABASE_URL=` in a shell or a .env file means unset, not "the empty URL".
        env_ignore_empty=True,
        # A field with environment aliases (`otel_endpoint`) still takes its own name in Python.
        populate_by_name=True,
    )

    redis_url: str | None = Field(
        default=None,
        description="Redis for shared state. Unset: an embedded redis-server (demo only).",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the audit database. Unset: SQLite under `home`.",
    )
    broker_url: str | None = Field(
        default=None,
        description="Where the queues are: Redis (redis://) or RabbitMQ (amqp://). "
        "Unset: the Redis URL.",
    )
    redis_key_prefix: str = Field(
        default="",
        description="Prefix of every Redis key agentyard and kombu write (one Redis, many teams).",
    )
    anthropic_api_key: SecretStr | None = None
    anthropic_base_url: str | None = None
    count_tokens: Literal["local", "api"] = Field(
        default="local",
        description="How prompts are fitted to an agent's context_tokens: `local` (an "
        "estimate that never counts low) or `api` (the provider's count_tokens, asked when the "
        "estimate is over, and cached).",
    )
    prices_file: Path | None = Field(
        default=None,
        description="A TOML file of model prices that override or add to the built-in ones.",
    )
    anomaly_deviations: float = Field(
        default=3.0, gt=0, description="A run costing this many deviations over the mean alerts."
    )
    anomaly_min_runs: int = Field(
        default=20, ge=2, description="Finished runs of a workflow type before any alert."
    )
    anomaly_window: int = Field(
        default=100, ge=2, description="Runs the rolling mean and deviation are taken over."
    )
    alert_webhook_url: str | None = Field(
        default=None, description="Where cost alerts are POSTed as JSON, besides log and table."
    )
    approval_webhook_url: str | None = Field(
        default=None,
        description="Where each approval asked for is POSTed as JSON (run id, gate, subject, "
        "its hash, due time), once it is on record.",
    )
    home: Path = Field(
        default=Path(".agentyard"), description="Local state of the embedded default."
    )

    log_level: str = Field(default="INFO", description="DEBUG, INFO, WARNING, ERROR or CRITICAL.")
    log_format: Literal["auto", "json", "console"] = "auto"

    visibility_timeout_s: int = Field(
        default=3600, description="Redis broker: an unacked message is redelivered after this."
    )
    task_time_limit_s: int = Field(
        default=1800, description="Hard limit of a prefork task; must stay under the visibility."
    )
    lease_margin_s: float = Field(
        default=30.0, description="A running step's lease is its agent's timeout plus this."
    )
    dispatch_timeout_s: float = Field(
        default=3600.0, description="A dispatched step nobody started by then is dispatched again."
    )
    lost_request_after_s: float = Field(
        default=30.0,
        description="A request dispatched this long ago, with its queue empty and no worker "
        "holding it, was lost by the broker and is dispatched again.",
    )
    unclaimed_request_after_s: float = Field(
        default=60.0,
        gt=0,
        description="A request a worker took from its queue this long ago and never started "
        "belongs to a worker that died holding it, and is dispatched again (the broker would give "
        "it back only after the visibility timeout). A live worker starts what it takes at once.",
    )
    sweep_interval_s: float = Field(default=5.0, description="Period of the maintenance sweep.")
    sweep_lease_s: float = Field(
        default=10.0,
        gt=0,
        description="How long a coordinator holds a sweep's lease unless it renews it: another "
        "coordinator takes the sweep over this long after the holder died.",
    )
    worker_warmup: bool = Field(
        default=True,
        description="A worker builds what its first calls need (clients, connections, scripts) "
        "before it takes a message.",
    )
    max_input_chars: int = Field(default=100_000, description="Largest workflow input accepted.")
    bus_inline_payload_bytes: int = Field(
        default=16_384,
        ge=0,
        description="A bus message whose payload is larger (as JSON) stays in PostgreSQL; the "
        "broker carries a reference and the consumer loads it.",
    )
    ack_max_attempts: int = Field(
        default=3,
        ge=1,
        description="Times a message that asks for an acknowledgement is published before it is "
        "dead-lettered.",
    )
    ack_sweep_interval_s: float = Field(
        default=1.0, gt=0, description="Period of the sweep for overdue acknowledgements."
    )
    provenance_key: SecretStr | None = Field(
        default=None,
        description="The key (at least 32 characters, the same in every process of the team) "
        "bus messages' provenance is signed and checked with (HMAC-SHA256). Unset: a message's "
        "claim of trusted text is sent unsigned, and every receiver reads it as untrusted.",
    )

    otel_endpoint: str | None = Field(
        default=None,
        validation_alias=AliasChoices("AGENTYARD_OTEL_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"),
        description="OTLP/HTTP endpoint spans are exported to (e.g. http://collector:4318). "
        "Unset: spans are made (their ids are in the logs and the trace rows) but not exported.",
    )
    otel_service_name: str = Field(
        default="agentyard", description="The service.name of the spans this process exports."
    )
    metrics_port: int | None = Field(
        default=None,
        ge=0,
        le=65535,
        description="Port of a worker's Prometheus endpoint (/metrics). Unset: no endpoint.",
    )
    flower_basic_auth: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("AGENTYARD_FLOWER_BASIC_AUTH", "FLOWER_BASIC_AUTH"),
        description="'user:password' (several, comma-separated) Flower asks for. Unset: Flower "
        "asks for nothing, so keep it on a private network.",
    )
    flower_broker_api: SecretStr | None = Field(
        default=None,
        description="RabbitMQ's management API, where Flower's Broker page reads the queues "
        "(http://user:password@host:15672/api/). Unset: the broker's host, user and password "
        "on port 15672.",
    )

    def __init__(self, **values: Any) -> None:
        """Read the settings; any that cannot work raise ``InvalidSettings`` naming each
        variable, what it got and what it takes."""
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise InvalidSettings(describe_errors(exc)) from None

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        return None if value is None else url_checks.check_redis_url(value)

    @field_validator("broker_url")
    @classmethod
    def _broker_url(cls, value: str | None) -> str | None:
        return None if value is None else url_checks.check_broker_url(value)

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str | None) -> str | None:
        return None if value is None else url_checks.check_database_url(value)

    @field_validator(
        "anthropic_base_url", "alert_webhook_url", "approval_webhook_url", "otel_endpoint"
    )
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        return None if value is None else url_checks.check_http_url(value)

    @field_validator("provenance_key")
    @classmethod
    def _provenance_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value().strip()) < MIN_PROVENANCE_KEY:
            raise ValueError(
                f"must be at least {MIN_PROVENANCE_KEY} characters (e.g. the output of "
                "`openssl rand -hex 32`), the same in every process of the team"
            )
        return value

    @field_validator("log_level")
    @classmethod
    def _log_level(cls, value: str) -> str:
        level = value.strip().upper()
        if level not in LOG_LEVELS:
            raise ValueError(f"must be one of {', '.join(LOG_LEVELS)}")
        return level

    @model_validator(mode="after")
    def _servers_all_or_none(self) -> Settings:
        """The embedded default (an embedded Redis, SQLite under ``home``) is all or nothing:
        a process given a shared Redis but the default database would record its runs where no
        worker on that Redis looks for them, and wait for them forever."""
        servers = self.redis_url or self.broker_url
        if servers and self.database_url is None and not servers.startswith("memory://"):
            raise ValueError(
                "AGENTYARD_REDIS_URL (or AGENTYARD_BROKER_URL) is set but "
                "AGENTYARD_DATABASE_URL is not: this process would record runs in the embedded "
                f"SQLite file under {self.home}/ while the workers on that Redis read another "
                "database. Set AGENTYARD_DATABASE_URL to the database the workers use "
                "(postgresql://...), or unset AGENTYARD_REDIS_URL and AGENTYARD_BROKER_URL for "
                "the embedded default"
            )
        if (self.broker_url or "").split("://", 1)[0] in url_checks.AMQP_SCHEMES and not (
            self.redis_url
        ):
            raise ValueError(
                "AGENTYARD_BROKER_URL names RabbitMQ, and AGENTYARD_REDIS_URL is not set: the "
                "queues can be on RabbitMQ, but the state every worker shares (spend caps, "
                "breakers, acknowledgements) is in Redis. Set AGENTYARD_REDIS_URL to the Redis "
                "the workers use"
            )
        if self.database_url is not None and self.redis_url is None:
            raise ValueError(
                "AGENTYARD_DATABASE_URL is set but AGENTYARD_REDIS_URL is not: the runs would "
                "be recorded in that database while their messages go to no shared Redis. Set "
                "AGENTYARD_REDIS_URL to the Redis the workers use, or unset "
                "AGENTYARD_DATABASE_URL for the embedded default"
            )
        return self

    @model_validator(mode="after")
    def _time_limit_under_visibility(self) -> Settings:
        if self.task_time_limit_s >= self.visibility_timeout_s:
            raise ValueError(
                "AGENTYARD_TASK_TIME_LIMIT_S must be below AGENTYARD_VISIBILITY_TIMEOUT_S, "
                "or a slow task is redelivered while it still runs"
            )
        return self

    @property
    def effective_broker_url(self) -> str | None:
        return self.broker_url or self.redis_url

    @property
    def effective_database_url(self) -> str:
        return normalize_database_url(
            self.database_url or f"sqlite:///{self.home / 'agentyard.db'}"
        )


def describe_errors(error: ValidationError) -> str:
    """The settings that cannot work, one per line: the variable, what is wrong, what it got
    (never the value of a secret; a URL's checks show it with its password hidden)."""
    lines = []
    for problem in error.errors():
        reason = str(problem["msg"]).removeprefix("Value error, ")
        if not problem["loc"]:  # a check across several settings
            lines.append(reason)
            continue
        name = str(problem["loc"][0])
        variable = name.upper() if name.isupper() else f"AGENTYARD_{name.upper()}"
        hidden = name.lower() in _NOT_ECHOED or name.lower().endswith(("_url", "_endpoint"))
        got = "" if hidden else f" (got {problem.get('input')!r})"
        lines.append(f"{variable}: {reason}{got}")
    return "invalid settings, fix the environment or the .env file:\n  " + "\n  ".join(lines)


# Secrets (by field name, or by the environment alias they were read under).
_NOT_ECHOED = frozenset(
    {
        "anthropic_api_key",
        "flower_basic_auth",
        "agentyard_flower_basic_auth",
        "flower_broker_api",
        "provenance_key",
    }
)


def normalize_database_url(url: str) -> str:
    """Use psycopg 3 for PostgreSQL whatever spelling the user gave."""
    for prefix in ("postgres://", "postgresql://", "postgresql+psycopg2://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url
