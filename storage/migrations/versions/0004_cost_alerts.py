"""cost alerts: runs that cost far more than their workflow type usually does

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    text = sqlmodel.sql.sqltypes.AutoString
    op.create_table(
        "cost_alerts",
        sa.Column("id", text(length=36), nullable=False),
        sa.Column("team", text(length=200), nullable=False),
        sa.Column("workflow_id", text(length=36), nullable=False),
        sa.Column("workflow", text(length=200), nullable=False),
        sa.Column("cost_micro", sa.Integer(), nullable=False),
        sa.Column("mean_micro", sa.Integer(), nullable=False),
        sa.Column("deviation_micro", sa.Integer(), nullable=False),
        sa.Column("threshold_micro", sa.Integer(), nullable=False),
        sa.Column("runs", sa.Integer(), nullable=False),
        sa.Column("finished", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("workflow_id"),
    )
    with op.batch_alter_table("cost_alerts") as batch_op:
        batch_op.create_index(batch_op.f("ix_cost_alerts_workflow"), ["workflow"], unique=False)


def downgrade() -> None:
    op.drop_table("cost_alerts")
