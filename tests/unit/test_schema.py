"""The migrations build exactly the schema the models describe, with money in 64 bits."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import BigInteger, inspect
from sqlmodel import SQLModel

import storage.models  # noqa: F401  (registers the tables)
from storage.db import engine_for, migrate

# Micro-dollars and tokens: sums of them pass 2**31 (a $3 000 budget is 3e9 micro-dollars).
COUNT_SUFFIXES = ("_micro", "_tokens")


def counts(columns: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(table, name) for table, name in columns if name.endswith(COUNT_SUFFIXES)]


def test_the_migrations_build_the_schema_the_models_describe(sqlite_url: str) -> None:
    migrate(sqlite_url)
    with engine_for(sqlite_url).connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), SQLModel.metadata) == []


def test_every_money_and_token_column_of_the_models_is_64_bit() -> None:
    columns = {
        (table.name, column.name): column
        for table in SQLModel.metadata.tables.values()
        for column in table.columns
    }
    money = counts(list(columns))

    assert ("workflows", "budget_micro") in money and ("cost_alerts", "mean_micro") in money
    assert [c for c in money if not isinstance(columns[c].type, BigInteger)] == []


def test_every_money_and_token_column_is_64_bit_after_migration(sqlite_url: str) -> None:
    migrate(sqlite_url)
    schema = inspect(engine_for(sqlite_url))
    types = {
        (table, column["name"]): str(column["type"])
        for table in schema.get_table_names()
        for column in schema.get_columns(table)
    }
    money = counts(list(types))

    assert {table for table, _ in money} == {
        "workflows",
        "steps",
        "traces",
        "cost_ledger",
        "cost_alerts",
        "frames",
    }
    assert {c: types[c] for c in money if types[c] != "BIGINT"} == {}
