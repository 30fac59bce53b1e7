"""tools: the tool ledger (every tool call, started before it runs and finished before the model
sees its result) and the model's answers in a tool loop that asked for tools

Revision ID: 0019
Revises: 0018
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def _id(name: str, table: str | None = None) -> sa.Column[object]:
    if table is None:
        return sa.Column(name, sa.String(length=36), nullable=False)
    return sa.Column(name, sa.String(length=36), sa.ForeignKey(f"{table}.id"), nullable=False)


def upgrade() -> None:
    op.create_table(
        "tool_turns",
        sa.Column("id", sa.String(length=36), primary_key=True),
        _id("workflow_id", "workflows"),
        _id("step_id", "steps"),
        sa.Column("turn", sa.Integer(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("agent_id", sa.String(length=63), nullable=False),
        sa.Column("content", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("step_id", "turn", name="uq_tool_turns_step_turn"),
    )
    op.create_index("ix_tool_turns_workflow_id", "tool_turns", ["workflow_id"])
    op.create_table(
        "tool_calls",
        sa.Column("id", sa.String(length=36), primary_key=True),
        _id("workflow_id", "workflows"),
        _id("step_id", "steps"),
        sa.Column("turn", sa.Integer(), nullable=False),
        sa.Column("index", sa.Integer(), nullable=False),
        sa.Column("tool_use_id", sa.String(length=128), nullable=False),
        sa.Column("tool", sa.String(length=64), nullable=False),
        sa.Column("arguments", sa.JSON(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=False),
        sa.Column("side_effects", sa.Boolean(), nullable=False),
        sa.Column("idempotent", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("runs", sa.Integer(), nullable=False),
        sa.Column("result", sa.Text(), nullable=True),
        sa.Column("is_error", sa.Boolean(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("duration_ms", sa.Float(), nullable=True),
        sa.UniqueConstraint("step_id", "turn", "index", name="uq_tool_calls_step_turn_index"),
        postgresql_with={"fillfactor": 80},
    )
    op.create_index("ix_tool_calls_workflow_id", "tool_calls", ["workflow_id"])


def downgrade() -> None:
    op.drop_index("ix_tool_calls_workflow_id", table_name="tool_calls")
    op.drop_table("tool_calls")
    op.drop_index("ix_tool_turns_workflow_id", table_name="tool_turns")
    op.drop_table("tool_turns")
