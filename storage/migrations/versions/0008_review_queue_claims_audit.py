"""review queue priority and claims, held-out samples, review device and sample, audit log

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-25

Existing inspections get their queue priority from their stored fields (uncertain, degraded, other);
existing samples are not held out; existing reviews get an empty device.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'audit_log',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('actor', sa.String(length=100), nullable=False),
        sa.Column('device', sa.String(length=100), nullable=False),
        sa.Column('action', sa.String(length=32), nullable=False),
        sa.Column('tool_id', sa.Integer(), nullable=True),
        sa.Column('target', sa.String(length=100), nullable=False),
        sa.Column('details', sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(['tool_id'], ['tool.id'], name=op.f('fk_audit_log_tool_id_tool'), ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_log')),
    )
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_log_created_at'), ['created_at'], unique=False)

    with op.batch_alter_table('inspection', schema=None) as batch_op:
        batch_op.add_column(sa.Column('review_priority', sa.SmallInteger(), nullable=False, server_default='3'))
        batch_op.add_column(sa.Column('claimed_by', sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column('claim_expires_at', sa.DateTime(), nullable=True))
        batch_op.create_index('ix_inspection_review_priority', ['needs_review', 'review_priority', 'created_at'],
                              unique=False)
    inspection = sa.table('inspection', sa.column('decision', sa.String), sa.column('degraded', sa.Boolean),
                          sa.column('review_priority', sa.SmallInteger))
    op.execute(inspection.update().where(inspection.c.degraded.is_(True)).values(review_priority=2))
    op.execute(inspection.update().where(inspection.c.decision == 'review').values(review_priority=1))

    with op.batch_alter_table('review', schema=None) as batch_op:
        batch_op.add_column(sa.Column('device', sa.String(length=100), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('sample_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_review_sample_id_sample'), 'sample', ['sample_id'], ['id'],
                                    ondelete='SET NULL')


def downgrade() -> None:
    with op.batch_alter_table('review', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_review_sample_id_sample'), type_='foreignkey')
        batch_op.drop_column('sample_id')
        batch_op.drop_column('device')

    with op.batch_alter_table('inspection', schema=None) as batch_op:
        batch_op.drop_index('ix_inspection_review_priority')
        batch_op.drop_column('claim_expires_at')
        batch_op.drop_column('claimed_by')
        batch_op.drop_column('review_priority')

    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_log_created_at'))

    op.drop_table('audit_log')
