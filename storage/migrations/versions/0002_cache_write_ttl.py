"""steps and traces: the part of the cache writes made with the 1-hour TTL

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ("steps", "traces"):
        with op.batch_alter_table(table) as batch_op:
            batch_op.add_column(
                sa.Column(
                    "cache_creation_1h_tokens", sa.Integer(), nullable=False, server_default="0"
                )
            )


def downgrade() -> None:
    for table in ("traces", "steps"):
        with op.batch_alter_table(table) as batch_op:
            batch_op.drop_column("cache_creation_1h_tokens")
