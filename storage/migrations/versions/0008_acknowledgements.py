"""acknowledgements: messages remember their attempt and whether they need an ack; acks are
recorded; a dead letter can name the message and recipient it gave up on

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    text = sqlmodel.sql.sqltypes.AutoString
    with op.batch_alter_table("messages") as batch_op:
        batch_op.add_column(
            sa.Column("attempt", sa.Integer(), nullable=False, server_default="1")
        )
        batch_op.add_column(
            sa.Column("requires_ack", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(sa.Column("ack_timeout_s", sa.Float(), nullable=True))
    with op.batch_alter_table("dead_letters") as batch_op:
        batch_op.add_column(sa.Column("message_id", text(length=36), nullable=True))
        batch_op.add_column(sa.Column("recipient", text(length=200), nullable=True))
    op.create_table(
        "message_acks",
        sa.Column("message_id", text(length=36), nullable=False),
        sa.Column("recipient", text(length=200), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("acked_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("message_id", "recipient"),
    )


def downgrade() -> None:
    op.drop_table("message_acks")
    with op.batch_alter_table("dead_letters") as batch_op:
        batch_op.drop_column("recipient")
        batch_op.drop_column("message_id")
    with op.batch_alter_table("messages") as batch_op:
        batch_op.drop_column("ack_timeout_s")
        batch_op.drop_column("requires_ack")
        batch_op.drop_column("attempt")
