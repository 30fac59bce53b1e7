"""The migrations build exactly the schema the models describe."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import SQLModel

import storage.models  # noqa: F401  (registers the tables)
from storage.db import engine_for, migrate


def test_the_migrations_build_the_schema_the_models_describe(sqlite_url: str) -> None:
    migrate(sqlite_url)
    with engine_for(sqlite_url).connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), SQLModel.metadata) == []
