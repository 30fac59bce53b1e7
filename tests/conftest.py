"""Fixtures. Unit tests use SQLite and no server; integration and system tests use a real Redis
and PostgreSQL (and RabbitMQ, for those that run on both brokers), each test with its own
database, key prefix or virtual host. Without a server they skip on a laptop and FAIL under CI
(``CI`` set), so a missing server can never pass as green."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import threading
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import fakeredis
import pytest
import redis
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import SecretStr
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from orchestration import Agent, Orchestrator, Settings, Workflow
from tests.support import InlineBus
from workers import tracing
from workers.stub_anthropic import StubAnthropicServer

TEST_REDIS_URL = os.environ.get("AGENTYARD_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
TEST_POSTGRES_URL = os.environ.get(
    "AGENTYARD_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
# The RabbitMQ server (no virtual host: each test makes one of its own through the management
# API, on its port).
TEST_RABBITMQ_URL = os.environ.get(
    "AGENTYARD_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672"
)
TEST_RABBITMQ_API_PORT = int(os.environ.get("AGENTYARD_TEST_RABBITMQ_API_PORT", "15672"))


def _missing(what: str, error: Exception) -> None:
    message = f"{what} is not reachable ({error}); `make test` starts it"
    if os.environ.get("CI"):
        pytest.fail(f"CI: {message}", pytrace=False)
    pytest.skip(message)


# -- unit ----------------------------------------------------------------------------------------


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'agentyard.db'}"


@pytest.fixture
def unit_settings(sqlite_url: str, tmp_path: Path) -> Settings:
    return Settings(
        redis_url="memory://",
        database_url=sqlite_url,
        home=tmp_path,
        log_level="WARNING",
        _env_file=None,
    )


TeamFactory = Callable[..., tuple[Orchestrator, InlineBus]]


@pytest.fixture
def inline_team(unit_settings: Settings) -> TeamFactory:
    """An orchestrator whose messages stay in memory: ``drain`` delivers them in-process."""

    def make(
        *agents: Agent, workflows: tuple[Workflow, ...] = ()
    ) -> tuple[Orchestrator, InlineBus]:
        bus = InlineBus(unit_settings.effective_database_url)
        orc = Orchestrator("unit", unit_settings, bus=bus, redis=fakeredis.FakeRedis())
        for agent in agents:
            orc.register_agent(agent)
        for workflow in workflows:
            orc.register_workflow(workflow)
        return orc, bus

    return make


@pytest.fixture
def stub() -> Iterator[StubAnthropicServer]:
    """A stub Messages API server for this test (a module may override it for other settings)."""
    with StubAnthropicServer() as server:
        yield server


@pytest.fixture
def stub_settings(unit_settings: Settings, stub: StubAnthropicServer) -> Settings:
    """The unit settings, with Claude models called through the real SDK at ``stub``."""
    return unit_settings.model_copy(
        update={"anthropic_base_url": stub.base_url, "anthropic_api_key": SecretStr("sk-test")}
    )


@dataclass
class Webhook:
    url: str
    received: list[dict[str, Any]]


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    """A local HTTP endpoint that keeps what is POSTed to it."""
    received: list[dict[str, Any]] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield Webhook(f"http://127.0.0.1:{server.server_port}/hook", received)
    server.shutdown()
    server.server_close()


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Tracing on, in this process: every span agentyard makes, caught in memory."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.use_provider(provider)
    yield exporter
    tracing.use_provider(None)


# -- integration ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def redis_server_url() -> str:
    try:
        redis.Redis.from_url(TEST_REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        _missing(f"Redis at {TEST_REDIS_URL}", exc)
    return TEST_REDIS_URL


def _rabbitmq_api(method: str, path: str, body: dict[str, str] | None = None) -> None:
    """A call to RabbitMQ's management API (the plugin `make test` enables), as its user."""
    parts = urlsplit(TEST_RABBITMQ_URL)
    user, password = unquote(parts.username or "guest"), unquote(parts.password or "guest")
    request = urllib.request.Request(
        f"http://{parts.hostname}:{TEST_RABBITMQ_API_PORT}/api/{path}",
        data=None if body is None else json.dumps(body).encode(),
        method=method,
        headers={
            "Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode(),
            "Content-Type": "application/json",
        },
    )
    with urllib.request.urlopen(request, timeout=30):
        pass


@pytest.fixture
def rabbitmq_url() -> Iterator[str]:
    """A RabbitMQ virtual host of this test's own (its queues meet no other test's), its URL
    yielded, deleted afterwards with everything in it."""
    vhost = f"agentyard-test-{uuid.uuid4().hex[:10]}"
    user = unquote(urlsplit(TEST_RABBITMQ_URL).username or "guest")
    try:
        _rabbitmq_api("PUT", f"vhosts/{vhost}")
    except OSError as exc:
        _missing(f"RabbitMQ's management API at {TEST_RABBITMQ_URL}", exc)
    try:
        _rabbitmq_api(
            "PUT", f"permissions/{vhost}/{user}", {"configure": ".*", "write": ".*", "read": ".*"}
        )
        yield f"{TEST_RABBITMQ_URL}/{vhost}"
    finally:
        _rabbitmq_api("DELETE", f"vhosts/{vhost}")


@pytest.fixture
def key_prefix(redis_server_url: str) -> Iterator[str]:
    """A key prefix of this test's own; its keys are deleted afterwards."""
    prefix = f"agentyard-test-{uuid.uuid4().hex[:10]}:"
    yield prefix
    client = redis.Redis.from_url(redis_server_url)
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


@contextlib.contextmanager
def own_database(prefix: str) -> Iterator[str]:
    """A PostgreSQL database of its own (named ``prefix`` and a random tail) beside the test
    server's, its URL yielded, dropped afterwards. Raises whatever the server raises."""
    admin = create_engine(TEST_POSTGRES_URL, isolation_level="AUTOCOMMIT")
    name = f"{prefix}{uuid.uuid4().hex[:10]}"
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        url = make_url(TEST_POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
        yield url
        from storage.db import engine_for

        engine_for(url).dispose()
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A database of this test session's own, dropped at the end."""
    databases = contextlib.ExitStack()
    try:
        url = databases.enter_context(own_database("agentyard_test_"))
    except Exception as exc:
        _missing(f"PostgreSQL at {TEST_POSTGRES_URL}", exc)
    with databases:
        yield url


@pytest.fixture
def server_settings(
    redis_server_url: str, postgres_url: str, key_prefix: str, tmp_path: Path
) -> Settings:
    return Settings(
        redis_url=redis_server_url,
        database_url=postgres_url,
        redis_key_prefix=key_prefix,
        home=tmp_path,
        log_level="WARNING",
        _env_file=None,
    )


@pytest.fixture
def server_env(server_settings: Settings) -> dict[str, str]:
    """The same settings as environment variables, for worker processes."""
    return {
        "AGENTYARD_REDIS_URL": server_settings.redis_url or "",
        "AGENTYARD_DATABASE_URL": server_settings.effective_database_url,
        "AGENTYARD_REDIS_KEY_PREFIX": server_settings.redis_key_prefix,
        "AGENTYARD_HOME": str(server_settings.home),
        "AGENTYARD_LOG_LEVEL": "INFO",
        "AGENTYARD_LOG_FORMAT": "json",
    }
