"""anomaly model and cross-check opinions

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24

Existing inspections get empty opinions and degraded = false.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('inspection', schema=None) as batch_op:
        batch_op.add_column(sa.Column('anomaly_score', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('opinions', sa.JSON(), nullable=False, server_default='{}'))
        batch_op.add_column(sa.Column('degraded', sa.Boolean(), nullable=False, server_default=sa.false()))

    with op.batch_alter_table('tool', schema=None) as batch_op:
        batch_op.add_column(sa.Column('active_anomaly_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_tool_active_anomaly_id_model_version'), 'model_version', ['active_anomaly_id'], ['id'], ondelete='SET NULL', use_alter=True)



def downgrade() -> None:
    with op.batch_alter_table('tool', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_tool_active_anomaly_id_model_version'), type_='foreignkey')
        batch_op.drop_column('active_anomaly_id')

    with op.batch_alter_table('inspection', schema=None) as batch_op:
        batch_op.drop_column('degraded')
        batch_op.drop_column('opinions')
        batch_op.drop_column('anomaly_score')

