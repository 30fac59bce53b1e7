"""a run keeps its workflow's graph (JSON); a step names its node in it, its loop iteration and
its branch

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("workflows") as batch_op:
        batch_op.add_column(sa.Column("graph", sa.JSON(none_as_null=True), nullable=True))
    with op.batch_alter_table("steps") as batch_op:
        batch_op.add_column(sa.Column("node", sa.String(length=300), nullable=True))
        batch_op.add_column(sa.Column("iteration", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("branch", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("steps") as batch_op:
        batch_op.drop_column("branch")
        batch_op.drop_column("iteration")
        batch_op.drop_column("node")
    with op.batch_alter_table("workflows") as batch_op:
        batch_op.drop_column("graph")
