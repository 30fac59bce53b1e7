"""Money past 32 bits on a real PostgreSQL and Redis: budgets and caps over $2 147 (2**31
micro-dollars) are stored exactly and runs under them succeed; every money and token column is
BIGINT after the migrations, and the migration to 64 bits keeps the rows it finds."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from celery.contrib.testing.worker import start_worker
from sqlalchemy import create_engine, inspect, text
from sqlmodel import SQLModel, select

import storage
from orchestration import Agent, Orchestrator, Settings, Workflow, WorkflowStatus
from orchestration.pricing import MAX_CAP_USD, usd_to_micro
from storage.db import session_scope
from storage.models import CostLedgerRow, WorkflowRow
from tests.conftest import own_database
from tests.unit.test_schema import counts

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("budget_usd", "cap_usd"), [(3000, 5000), (MAX_CAP_USD, MAX_CAP_USD)], ids=["3000", "max"]
)
def test_a_run_with_a_budget_past_32_bits_succeeds_and_its_budget_is_stored_exactly(
    server_settings: Settings, budget_usd: float, cap_usd: float
) -> None:
    # Given a team whose caps are over 2**31 micro-dollars
    orc = Orchestrator("money", server_settings)
    orc.register_agent(Agent(id="writer", model="offline:echo", cost_limit_usd=cap_usd))
    orc.register_workflow(
        Workflow.sequence("write", ["writer"], budget_usd=budget_usd, daily_budget_usd=budget_usd)
    )
    queues = ["coordinator", "agent.writer"]
    with start_worker(
        orc.celery, pool="threads", concurrency=2, perform_ping_check=False, queues=queues
    ):
        # When a run is submitted and worked on
        result = orc.submit("write", "the telegraph").wait(timeout=60)
    orc.close()

    # Then it succeeds, and its budget is on record to the micro-dollar
    assert result.status is WorkflowStatus.SUCCEEDED, result.error
    assert result.cost_usd > 0
    with session_scope(orc.database_url) as session:
        row = session.get(WorkflowRow, result.id)
        ledger = session.exec(
            select(CostLedgerRow).where(CostLedgerRow.workflow_id == result.id)
        ).all()
    assert row is not None
    assert row.budget_micro == usd_to_micro(budget_usd) == int(budget_usd) * 1_000_000
    assert row.budget_micro > 2**31
    assert sum(entry.cost_micro for entry in ledger) == row.cost_micro > 0


@pytest.fixture
def fresh_postgres_url(postgres_url: str) -> Iterator[str]:
    """An empty database of this test's own, beside the session's, dropped afterwards."""
    with own_database("agentyard_money_") as url:
        yield url


def _migrate(url: str, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(Path(storage.__file__).parent / "migrations"))
    engine = create_engine(url)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
    engine.dispose()


def test_every_money_and_token_column_is_64_bit_on_postgres_after_migration(
    fresh_postgres_url: str,
) -> None:
    _migrate(fresh_postgres_url, "head")

    engine = create_engine(fresh_postgres_url)
    schema = inspect(engine)
    types = {
        (table, column["name"]): str(column["type"])
        for table in schema.get_table_names()
        for column in schema.get_columns(table)
    }
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), SQLModel.metadata)
    engine.dispose()
    assert differences == []  # the models say BIGINT where the migrations made it
    money = counts(list(types))
    assert ("workflows", "budget_micro") in money and ("steps", "input_tokens") in money
    assert {column: types[column] for column in money if types[column] != "BIGINT"} == {}


def test_the_migration_to_64_bits_keeps_the_rows_it_finds(fresh_postgres_url: str) -> None:
    # Given a database of the last 32-bit revision, with a run at the most 32 bits hold
    _migrate(fresh_postgres_url, "0011")
    engine = create_engine(fresh_postgres_url)
    insert = text(
        "INSERT INTO workflows (id, team, name, status, priority, input, budget_micro, "
        "cost_micro, created_at, updated_at) VALUES (:id, 't', 'w', 'succeeded', 5, 'x', "
        ":budget, :cost, now(), now())"
    )
    with engine.begin() as connection:
        connection.execute(insert, {"id": "old", "budget": 2**31 - 1, "cost": 12})

    # When the migrations run to the end
    _migrate(fresh_postgres_url, "head")

    # Then the old row is as it was, and a budget past 32 bits is stored as it is
    with engine.begin() as connection:
        connection.execute(insert, {"id": "new", "budget": 3_000_000_000, "cost": 2**40})
        rows = connection.execute(
            text("SELECT id, budget_micro, cost_micro FROM workflows ORDER BY id")
        ).all()
    engine.dispose()
    assert [tuple(row) for row in rows] == [
        ("new", 3_000_000_000, 2**40),
        ("old", 2**31 - 1, 12),
    ]
