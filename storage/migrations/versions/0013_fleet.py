"""fleet: station heartbeats and a rollout counter per tool (issue 21)

Revision ID: 0013_fleet
Revises: 0013_audit
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013_fleet"
down_revision = "0013_audit"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "fleet_station",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("software", sa.String(length=100), nullable=False),
        sa.Column("recipe", sa.String(length=100), nullable=True),
        sa.Column("models", sa.JSON(), nullable=False),
        sa.Column("fps", sa.Float(), nullable=False),
        sa.Column("backlog", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=1000), nullable=True),
        sa.Column("heartbeat_s", sa.Float(), nullable=False),
        sa.Column("registered_at", sa.DateTime(), nullable=False),
        sa.Column("last_seen", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fleet_station")),
        sa.UniqueConstraint("name", name=op.f("uq_fleet_station_name")),
    )
    op.create_table(
        "rollout_signal",
        sa.Column("tool", sa.String(length=100), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("changed_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("tool", name=op.f("pk_rollout_signal")),
    )


def downgrade() -> None:
    op.drop_table("rollout_signal")
    op.drop_table("fleet_station")
