"""money and token counts in 64 bits: every micro-dollar column (budgets, costs, the cost
alerts' figures) and every token count is BIGINT, so that a budget over $2 147 (2**31
micro-dollars) is stored as it is, not refused by PostgreSQL

On PostgreSQL each table is rewritten once (ALTER ... TYPE BIGINT takes its lock for that
time); SQLite copies each table (batch mode). Downgrading fails on a value that does not fit
32 bits.

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

_TOKENS = (
    "input_tokens",
    "output_tokens",
    "cache_creation_tokens",
    "cache_creation_1h_tokens",
    "cache_read_tokens",
)
# table -> (column, nullable)
_COLUMNS: dict[str, tuple[tuple[str, bool], ...]] = {
    "workflows": (("budget_micro", True), ("cost_micro", False)),
    "steps": (*((name, False) for name in _TOKENS), ("cost_micro", False)),
    "traces": (*((name, False) for name in _TOKENS), ("cost_micro", False)),
    "cost_ledger": (("cost_micro", False),),
    "cost_alerts": tuple(
        (name, False) for name in ("cost_micro", "mean_micro", "deviation_micro", "threshold_micro")
    ),
}


def _retype(old: sa.types.TypeEngine[int], new: sa.types.TypeEngine[int]) -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for table, columns in _COLUMNS.items():
        if postgres:  # one ALTER TABLE for all its columns: one rewrite, not one per column
            kind = new.compile(dialect=op.get_bind().dialect)
            changes = ", ".join(f"ALTER COLUMN {name} TYPE {kind}" for name, _ in columns)
            op.execute(f"ALTER TABLE {table} {changes}")
            continue
        with op.batch_alter_table(table) as batch_op:
            for name, nullable in columns:
                batch_op.alter_column(
                    name, type_=new, existing_type=old, existing_nullable=nullable
                )


def upgrade() -> None:
    _retype(sa.Integer(), sa.BigInteger())


def downgrade() -> None:
    _retype(sa.BigInteger(), sa.Integer())
