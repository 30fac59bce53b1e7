"""agentyard's settings: the one module that reads the environment.

Every value comes from an ``AGENTYARD_*`` variable (or a ``.env`` file). Nothing else in the
project calls ``os.environ`` for configuration; components are handed a ``Settings``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Where agentyard finds its servers and how it treats them."""

    model_config = SettingsConfigDict(
        env_prefix="AGENTYARD_",
        env_file=".env",
        extra="ignore",
        frozen=True,
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
        default=None, description="Celery broker URL. Unset: the Redis URL."
    )
    redis_key_prefix: str = Field(
        default="",
        description="Prefix of every Redis key agentyard and kombu write (one Redis, many teams).",
    )
    anthropic_api_key: SecretStr | None = None
    anthropic_base_url: str | None = None
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
    home: Path = Field(
        default=Path(".agentyard"), description="Local state of the embedded default."
    )

    log_level: str = "INFO"
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


def normalize_database_url(url: str) -> str:
    """Use psycopg 3 for PostgreSQL whatever spelling the user gave."""
    for prefix in ("postgres://", "postgresql://", "postgresql+psycopg2://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url
