"""analytics rollups: inspections per hour, station, version, decision, label and score / latency bin,
backfilled from the existing inspections (issue 21)

Revision ID: 0013_rollup
Revises: 0012
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.orm import Session

from storage.analytics_queries import roll_up

revision = "0013_rollup"
down_revision = "0012"
branch_labels = None
depends_on = None


def _keys() -> list[sa.Column]:
    return [sa.Column("tool_id", sa.Integer(), nullable=False), sa.Column("hour", sa.DateTime(), nullable=False),
            sa.Column("station", sa.String(length=100), nullable=False),
            sa.Column("model_version_id", sa.Integer(), nullable=False),
            sa.Column("decision", sa.String(length=20), nullable=False)]


def _table(name: str, *measures: sa.Column) -> None:
    op.create_table(
        name, *_keys(), *measures,
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["tool_id"], ["tool.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("tool_id", "hour", "station", "model_version_id", "decision",
                                *(m.name for m in measures)),
    )


def upgrade() -> None:
    _table("inspection_rollup", sa.Column("label", sa.String(length=100), nullable=False),
           sa.Column("score_bin", sa.SmallInteger(), nullable=False))
    _table("inspection_latency_rollup", sa.Column("latency_bin", sa.SmallInteger(), nullable=False))
    roll_up(Session(bind=op.get_bind()), sa.true(), ("hour",))  # the existing inspections, in this transaction


def downgrade() -> None:
    op.drop_table("inspection_latency_rollup")
    op.drop_table("inspection_rollup")
