"""steps know the step they follow; traces name their OpenTelemetry span and the agent asked for

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("steps") as batch_op:
        batch_op.add_column(sa.Column("parent_step_id", sa.String(length=36), nullable=True))
    with op.batch_alter_table("traces") as batch_op:
        batch_op.add_column(sa.Column("requested_agent_id", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("trace_id", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("span_id", sa.String(length=16), nullable=True))
    # `agentyard find --slower-than` and `--cost-over` look at recent runs first.
    op.create_index("ix_workflows_created_at", "workflows", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_workflows_created_at", table_name="workflows")
    with op.batch_alter_table("traces") as batch_op:
        batch_op.drop_column("span_id")
        batch_op.drop_column("trace_id")
        batch_op.drop_column("requested_agent_id")
    with op.batch_alter_table("steps") as batch_op:
        batch_op.drop_column("parent_step_id")
