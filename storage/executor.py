"""Running the hot path's prebuilt statements: on psycopg's cursor directly for PostgreSQL, through
SQLAlchemy for any other database.

SQLAlchemy builds every statement (``storage.statements``, from the table definitions, so SQL and
schema cannot drift) and compiles it once per dialect. On PostgreSQL the compiled SQL then runs
on the pooled psycopg connection itself: SQLAlchemy's execution context costs about 100 µs of CPU
per statement, more than psycopg and the server together, and a step runs nine statements (see
docs/performance.md). SQLite, the embedded default, takes SQLAlchemy's ordinary path. Both give
the same ``Result``; the integration tests run every statement both ways and compare.

Connections come from the same SQLAlchemy pool either way. A psycopg connection that failed with
a connection-level error is invalidated, so the pool never hands it out again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import psycopg
from psycopg.pq import ExecStatus
from psycopg.rows import namedtuple_row
from sqlalchemy import Connection, Engine
from sqlalchemy.engine.interfaces import Dialect

from storage.db import engine_for
from storage.errors import ConfigurationError

Params = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Result:
    """What a statement returned: its rows (named tuples) and the count of rows it changed."""

    rows: Sequence[Any]
    rowcount: int

    def one_or_none(self) -> Any:
        return self.rows[0] if self.rows else None

    def scalar(self) -> Any:
        return self.rows[0][0] if self.rows else None

    def __iter__(self) -> Iterator[Any]:
        return iter(self.rows)


class Tx(Protocol):
    """A transaction the hot path's statements run in."""

    def run(self, statement: Any, params: Params | list[Params]) -> Result:
        """Run one statement (a list of parameter sets: once per set, as one batch)."""
        ...


@contextmanager
def transaction(url: str) -> Iterator[Tx]:
    """A transaction that commits when the block ends and rolls back on error."""
    engine = engine_for(url)
    if not _is_psycopg(engine):
        with engine.begin() as connection:
            yield within(connection)
        return
    with _pooled(engine) as driver:
        try:
            yield _PsycopgTx(driver, engine.dialect)
            driver.commit()
        except BaseException:
            if not driver.broken:
                driver.rollback()
            raise


def run_alone(url: str, statement: Any, params: Params) -> Result:
    """Run one statement that commits on its own. On PostgreSQL it runs in autocommit mode: one
    round trip, no BEGIN and no COMMIT."""
    engine = engine_for(url)
    if not _is_psycopg(engine):
        with engine.begin() as connection:
            return within(connection).run(statement, params)
    with _pooled(engine) as driver:
        driver.autocommit = True
        try:
            return _PsycopgTx(driver, engine.dialect).run(statement, params)
        finally:
            if not driver.broken:
                driver.autocommit = False


class BatchedInserts:
    """A transaction (``tx``'s) whose plain INSERTs wait: each statement's rows are kept, in the
    order the statements are first seen, and inserted as one batch per statement (one
    ``executemany``: on psycopg, one round trip for all of them) when ``flush`` is called, or
    before any other statement runs (a read sees every row written before it). For many runs
    recorded at once (``orc.submit_many``): their rows go in table by table, the tables in the
    order the first run wrote them, which keeps every foreign key's row ahead of its users."""

    def __init__(self, tx: Tx) -> None:
        self._tx = tx
        self._waiting: dict[tuple[Any, tuple[str, ...]], list[Params]] = {}

    def run(self, statement: Any, params: Params | list[Params]) -> Result:
        if getattr(statement, "is_insert", False) and not statement.returning_column_descriptions:
            for row in params if isinstance(params, list) else [params]:
                self._waiting.setdefault((statement, tuple(sorted(row))), []).append(row)
            return Result([], 0)
        self.flush()
        return self._tx.run(statement, params)

    def flush(self) -> None:
        """Insert every row that waits."""
        waiting, self._waiting = self._waiting, {}
        for (statement, _), rows in waiting.items():
            self._tx.run(statement, rows)


def within(connection: Connection) -> Tx:
    """The transaction an SQLAlchemy connection (or an ORM session's) is in."""
    return _AlchemyTx(connection)


class _AlchemyTx:
    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def run(self, statement: Any, params: Params | list[Params]) -> Result:
        result = self._connection.execute(statement, params)
        if result.returns_rows:
            rows = result.all()
            return Result(rows, len(rows))
        return Result([], result.rowcount)


class _PsycopgTx:
    def __init__(self, connection: psycopg.Connection[Any], dialect: Dialect) -> None:
        self._connection = connection
        self._dialect = dialect
        self._cursor: psycopg.Cursor[Any] | None = None

    def run(self, statement: Any, params: Params | list[Params]) -> Result:
        if self._cursor is None:
            self._cursor = self._connection.cursor(row_factory=namedtuple_row)
        cursor = self._cursor
        if isinstance(params, list):
            if not params:
                return Result([], 0)
            compiled = _compile(statement, self._dialect, tuple(params[0]))
            cursor.executemany(compiled.sql, [compiled.bind(p) for p in params])
            return Result([], cursor.rowcount)
        compiled = _compile(statement, self._dialect, tuple(params))
        cursor.execute(compiled.sql, compiled.bind(params))
        rows = cursor.fetchall() if _returned_rows(cursor) else []
        return Result(rows, cursor.rowcount)


_ROWS = (ExecStatus.TUPLES_OK, ExecStatus.SINGLE_TUPLE)


def _returned_rows(cursor: psycopg.Cursor[Any]) -> bool:
    """What ``cursor.description is not None`` says, without building the description (a
    column object per column of every result: a tenth of a decision's CPU)."""
    result = cursor.pgresult
    return result is not None and (result.nfields > 0 or result.status in _ROWS)


@dataclass(frozen=True, slots=True)
class _Compiled:
    """A statement compiled for psycopg: its SQL, the values of the binds it fixed itself (a
    literal in ``.values(status="running")``, a column's scalar default), the column defaults
    computed per row (``new_id``), and the converters some types need (JSON)."""

    sql: str
    fixed: Params
    generated: tuple[tuple[str, Callable[[], Any]], ...]
    converters: tuple[tuple[str, Callable[[Any], Any]], ...]

    def bind(self, params: Params) -> Params:
        values = {**self.fixed, **params}
        for name, generate in self.generated:
            if name not in params:
                values[name] = generate()
        for name, convert in self.converters:
            if name in values:
                values[name] = convert(values[name])
        return values


_compiled: dict[tuple[Any, tuple[str, ...]], _Compiled] = {}
_compile_lock = threading.Lock()


def _compile(statement: Any, dialect: Dialect, keys: tuple[str, ...]) -> _Compiled:
    """Compile once per statement and set of parameter names (an INSERT's columns are the keys
    it is given). One dialect: every PostgreSQL engine here is psycopg's."""
    found = _compiled.get((statement, keys))
    if found is not None:
        return found
    compiled = statement.compile(dialect=dialect, column_keys=list(keys))
    fixed: Params = {}
    generated: list[tuple[str, Callable[[], Any]]] = []
    converters: list[tuple[str, Callable[[Any], Any]]] = []
    for bind, name in compiled.bind_names.items():
        if not bind.required:
            fixed[name] = bind.effective_value
        convert = bind.type.dialect_impl(dialect).bind_processor(dialect)
        if convert is not None:
            converters.append((name, convert))
    # Columns left out of an INSERT or UPDATE get their Python-side defaults, as SQLAlchemy's
    # own execution would give them.
    for column in [*compiled.insert_prefetch, *compiled.update_prefetch]:
        default = column.default if column in compiled.insert_prefetch else column.onupdate
        if default is None or not (default.is_scalar or default.is_callable):
            raise ConfigurationError(f"column {column.key!r}: unsupported default {default!r}")
        if default.is_scalar:
            fixed[column.key] = default.arg
        else:
            generated.append((column.key, _no_context(default.arg)))
    entry = _Compiled(compiled.string, fixed, tuple(generated), tuple(converters))
    with _compile_lock:
        return _compiled.setdefault((statement, keys), entry)


def _no_context(make: Callable[[Any], Any]) -> Callable[[], Any]:
    """SQLAlchemy wraps a column's default function to take an execution context; ours ignore
    it."""
    return lambda: make(None)


@contextmanager
def _pooled(engine: Engine) -> Iterator[psycopg.Connection[Any]]:
    """A psycopg connection from the engine's pool. One that failed at the connection level is
    discarded here, rather than found broken (and logged as an error) by the pool's reset."""
    pooled = engine.raw_connection()
    try:
        driver = pooled.driver_connection
        assert isinstance(driver, psycopg.Connection), "a psycopg engine hands out its connections"
        yield driver
    except psycopg.OperationalError:
        pooled.invalidate()
        raise
    finally:
        pooled.close()


def _is_psycopg(engine: Engine) -> bool:
    return engine.dialect.driver == "psycopg"
