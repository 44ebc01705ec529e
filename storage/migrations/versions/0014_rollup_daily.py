"""analytics: daily rollups beside the hourly ones (a month is 24 times fewer rows) and review rollups
(hourly and daily), backfilled from the existing inspections and reviews (issue 21)

Revision ID: 0014_rollup_daily
Revises: 0013_fleet
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.orm import Session

from storage.analytics_queries import roll_up, roll_up_reviews

revision = "0014_rollup_daily"
down_revision = "0013_objstore"
branch_labels = None
depends_on = None


def _table(name: str, period: str, *measures: sa.Column) -> None:
    op.create_table(
        name, sa.Column("tool_id", sa.Integer(), nullable=False), sa.Column(period, sa.DateTime(), nullable=False),
        sa.Column("station", sa.String(length=100), nullable=False),
        sa.Column("model_version_id", sa.Integer(), nullable=False),
        sa.Column("decision", sa.String(length=20), nullable=False), *measures,
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["tool_id"], ["tool.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("tool_id", period, "station", "model_version_id", "decision",
                                *(m.name for m in measures)),
    )


def _label() -> sa.Column:
    return sa.Column("label", sa.String(length=100), nullable=False)


def upgrade() -> None:
    _table("inspection_daily_rollup", "day", _label(), sa.Column("score_bin", sa.SmallInteger(), nullable=False))
    _table("inspection_daily_latency_rollup", "day", sa.Column("latency_bin", sa.SmallInteger(), nullable=False))
    for name, period in (("review_rollup", "hour"), ("review_daily_rollup", "day")):
        _table(name, period, _label(), sa.Column("verdict", sa.String(length=100), nullable=False))
    session = Session(bind=op.get_bind())  # the existing inspections and reviews, in this transaction
    roll_up(session, sa.true(), ("day",))
    roll_up_reviews(session, sa.true())


def downgrade() -> None:
    op.drop_table("review_daily_rollup")
    op.drop_table("review_rollup")
    op.drop_table("inspection_daily_latency_rollup")
    op.drop_table("inspection_daily_rollup")
