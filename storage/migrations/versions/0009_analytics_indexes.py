"""analytics indexes

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-25

Indexes for the analytics queries: a covering index of a tool's inspections over time with every
column the grouped queries read (they never touch the wide table rows), the station filter (and the
list of stations) of a tool, and a model version's inspections over time (drift reference).
"""

from __future__ import annotations

from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_inspection_analytics', 'inspection', ['tool_id', 'created_at', 'decision', 'score',
                                                              'latency_ms', 'label', 'model_version_id', 'station'])
    op.create_index('ix_inspection_tool_station_time', 'inspection', ['tool_id', 'station', 'created_at'])
    op.create_index('ix_inspection_version_time', 'inspection', ['model_version_id', 'created_at'])


def downgrade() -> None:
    op.drop_index('ix_inspection_version_time', table_name='inspection')
    op.drop_index('ix_inspection_tool_station_time', table_name='inspection')
    op.drop_index('ix_inspection_analytics', table_name='inspection')
