"""workflow graphs run: a step names the frame it runs in (its scope), unique per node in it;
node_runs keep each run of a loop, fan-out, parallel or route, and frames each of its
iterations or branches

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

_FILLFACTOR = {"postgresql_with": {"fillfactor": 80}}


def _when(name: str, nullable: bool = True) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    with op.batch_alter_table("steps") as batch_op:
        batch_op.add_column(
            sa.Column("scope", sa.String(length=1000), nullable=False, server_default="")
        )
        batch_op.create_unique_constraint(
            "uq_steps_workflow_scope_node", ["workflow_id", "scope", "node"]
        )
    op.create_table(
        "node_runs",
        sa.Column("id", sa.String(length=36), primary_key=True),
        sa.Column("workflow_id", sa.String(length=36), sa.ForeignKey("workflows.id"), nullable=False),
        sa.Column("node", sa.String(length=300), nullable=False),
        sa.Column("scope", sa.String(length=1000), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("input", sa.Text(), nullable=False),
        sa.Column("input_label", sa.Text(), nullable=False),
        sa.Column("input_source", sa.String(length=36), nullable=True),
        sa.Column("output", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("error_kind", sa.String(length=64), nullable=True),
        sa.Column("progress", sa.JSON(), nullable=False),
        _when("started_at", nullable=False),
        _when("finished_at"),
        sa.UniqueConstraint("workflow_id", "scope", "node", name="uq_node_runs_workflow_scope_node"),
        **_FILLFACTOR,
    )
    op.create_table(
        "frames",
        sa.Column("id", sa.String(length=36), primary_key=True),
        sa.Column("workflow_id", sa.String(length=36), sa.ForeignKey("workflows.id"), nullable=False),
        sa.Column(
            "node_run_id", sa.String(length=36), sa.ForeignKey("node_runs.id"), nullable=False
        ),
        sa.Column("index", sa.Integer(), nullable=False),
        sa.Column("scope", sa.String(length=1000), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("input", sa.Text(), nullable=False),
        sa.Column("input_label", sa.Text(), nullable=False),
        sa.Column("input_source", sa.String(length=36), nullable=True),
        sa.Column("first_output", sa.Text(), nullable=True),
        sa.Column("output", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("error_kind", sa.String(length=64), nullable=True),
        sa.Column("held_micro", sa.BigInteger(), nullable=False),
        _when("started_at"),
        _when("finished_at"),
        sa.UniqueConstraint("workflow_id", "scope", name="uq_frames_workflow_scope"),
        sa.UniqueConstraint("node_run_id", "index", name="uq_frames_node_run_index"),
        **_FILLFACTOR,
    )


def downgrade() -> None:
    op.drop_table("frames")
    op.drop_table("node_runs")
    with op.batch_alter_table("steps") as batch_op:
        batch_op.drop_constraint("uq_steps_workflow_scope_node", type_="unique")
        batch_op.drop_column("scope")
