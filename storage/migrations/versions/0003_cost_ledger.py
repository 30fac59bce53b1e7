"""the cost ledger: every model call's cost, the book of the spend caps

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    text = sqlmodel.sql.sqltypes.AutoString
    op.create_table(
        "cost_ledger",
        sa.Column("id", text(length=80), nullable=False),
        sa.Column("team", text(length=200), nullable=False),
        sa.Column("workflow_id", text(length=36), nullable=False),
        sa.Column("workflow", text(length=200), nullable=False),
        sa.Column("step_id", text(length=36), nullable=False),
        sa.Column("agent_id", text(length=200), nullable=False),
        sa.Column("model", text(length=200), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("cost_micro", sa.Integer(), nullable=False),
        sa.Column("day", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("cost_ledger") as batch_op:
        batch_op.create_index("ix_cost_ledger_team_day", ["team", "day"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_cost_ledger_workflow_id"), ["workflow_id"], unique=False
        )


def downgrade() -> None:
    op.drop_table("cost_ledger")
