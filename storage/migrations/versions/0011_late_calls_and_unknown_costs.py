"""traces say whether an answer came after the deadline and how long the provider took; the cost
ledger marks calls cut off by a dead worker, whose cost is unknown (booked at their worst case)

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("traces") as batch_op:
        batch_op.add_column(
            sa.Column("late", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(sa.Column("wire_ms", sa.Float(), nullable=True))
    with op.batch_alter_table("cost_ledger") as batch_op:
        batch_op.add_column(
            sa.Column("unknown", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("cost_ledger") as batch_op:
        batch_op.drop_column("unknown")
    with op.batch_alter_table("traces") as batch_op:
        batch_op.drop_column("wire_ms")
        batch_op.drop_column("late")
