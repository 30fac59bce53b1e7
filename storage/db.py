"""Engines, sessions and schema migrations for the audit database.

PostgreSQL (psycopg 3) in production; SQLite is the embedded default. Engines are made once per
URL and process, and thrown away in a forked child so that no connection crosses a fork.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.exc import OperationalError
from sqlmodel import Session

from storage.errors import ConfigurationError, DatabaseUnavailable
from storage.url_checks import without_password

_MIGRATIONS = Path(__file__).parent / "migrations"
# Any constant works; it only has to be the same in every process that migrates.
_MIGRATION_LOCK_KEY = 0x61677479  # "agty"

POSTGRES_POOL_SIZE = 10  # connections a process keeps open (more may open under load)

_lock = threading.Lock()
_engines: dict[str, Engine] = {}
_migrated: set[str] = set()
_pid = os.getpid()


def engine_for(url: str) -> Engine:
    """The process's engine for ``url``, created on first use."""
    global _pid
    with _lock:
        if os.getpid() != _pid:  # forked: the parent's pooled connections are not ours
            for engine in _engines.values():
                engine.dispose(close=False)
            _engines.clear()
            _pid = os.getpid()
        if url not in _engines:
            _engines[url] = _create_engine(url)
        return _engines[url]


def _create_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if url.startswith("postgresql"):
        # No pre-ping: it costs a round trip per checkout, several per step. A connection the
        # server dropped fails its statement, SQLAlchemy discards the pool, and the step is
        # recovered by the sweep (lease or lost-request); the next checkout connects afresh.
        return create_engine(url, pool_size=POSTGRES_POOL_SIZE, max_overflow=20, pool_recycle=1800)
    raise ConfigurationError(
        f"unsupported database URL scheme in {url.split(':', 1)[0]!r}: "
        "set AGENTYARD_DATABASE_URL to a postgresql:// or sqlite:/// URL"
    )


def open_connections(url: str, wanted: int) -> int:
    """Open up to ``wanted`` pooled connections to a PostgreSQL database now (at most the pool's
    size), so that a worker's first steps do not all connect at once. Returns how many."""
    if not is_postgres(url):
        return 0
    engine = engine_for(url)
    opened = []
    try:
        for _ in range(max(0, min(wanted, POSTGRES_POOL_SIZE))):
            connection = engine.connect()
            opened.append(connection)
            connection.exec_driver_sql("SELECT 1")
    finally:
        for connection in opened:
            connection.close()  # back to the pool, open
    return len(opened)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")  # readers do not block the writer
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


@contextmanager
def session_scope(url: str) -> Iterator[Session]:
    """A session whose transaction commits when the block ends and rolls back on error."""
    with Session(engine_for(url), expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def is_postgres(url: str) -> bool:
    return url.startswith("postgresql")


def _alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def migrate(url: str) -> None:
    """Bring the schema to the newest revision; safe when many processes start at once."""
    if url in _migrated:
        return
    config = _alembic_config(url)
    head = ScriptDirectory.from_config(config).get_current_head()
    engine = engine_for(url)
    try:
        with engine.connect() as probe:
            if MigrationContext.configure(probe).get_current_revision() == head:
                _migrated.add(url)
                return
    except OperationalError as exc:
        raise DatabaseUnavailable(
            f"cannot reach the database at {without_password(url)} "
            f"({' '.join(str(exc.orig).split())}); check "
            "AGENTYARD_DATABASE_URL and that the database server is running there"
        ) from None
    with _migration_lock(url, engine), engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
    _migrated.add(url)


@contextmanager
def _migration_lock(url: str, engine: Engine) -> Iterator[None]:
    if is_postgres(url):
        with engine.connect() as connection:
            connection.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _MIGRATION_LOCK_KEY})
            try:
                yield
            finally:
                connection.execute(
                    text("SELECT pg_advisory_unlock(:k)"), {"k": _MIGRATION_LOCK_KEY}
                )
                connection.commit()
        return
    database = url.split("///", 1)[-1]
    lock_path = f"{database}.migrate.lock" if database and database != ":memory:" else None
    if lock_path is None:
        yield
        return
    with open(lock_path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
