"""validation checkpoints: a step keeps every verdict on its answers, how often one was asked
for again, and its output parsed as its agent's schema; a run keeps the facts it was given

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("steps") as batch_op:
        batch_op.add_column(sa.Column("data", sa.JSON(none_as_null=True), nullable=True))
        batch_op.add_column(sa.Column("checks", sa.JSON(none_as_null=True), nullable=True))
        batch_op.add_column(
            sa.Column("reasks", sa.Integer(), nullable=False, server_default="0")
        )
    with op.batch_alter_table("workflows") as batch_op:
        batch_op.add_column(sa.Column("facts", sa.JSON(none_as_null=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("workflows") as batch_op:
        batch_op.drop_column("facts")
    with op.batch_alter_table("steps") as batch_op:
        batch_op.drop_column("reasks")
        batch_op.drop_column("checks")
        batch_op.drop_column("data")
