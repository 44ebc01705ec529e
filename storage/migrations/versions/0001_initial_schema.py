"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('tool',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('class_names', sa.JSON(), nullable=False),
    sa.Column('good_class', sa.String(length=100), nullable=False),
    sa.Column('roi', sa.JSON(), nullable=True),
    sa.Column('settings', sa.JSON(), nullable=False),
    sa.Column('active_model_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tool')),
    sa.UniqueConstraint('name', name=op.f('uq_tool_name'))
    )
    op.create_table('model_version',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('tool_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.Enum('classifier', 'anomaly', name='model_kind', native_enum=False, create_constraint=True, length=16), nullable=False),
    sa.Column('profile', sa.String(length=32), nullable=False),
    sa.Column('status', sa.Enum('candidate', 'active', 'retired', name='model_status', native_enum=False, create_constraint=True, length=16), nullable=False),
    sa.Column('metrics', sa.JSON(), nullable=False),
    sa.Column('artifact_dir', sa.String(length=500), nullable=False),
    sa.Column('train_seconds', sa.Double(), nullable=False),
    sa.Column('n_samples', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['tool_id'], ['tool.id'], name=op.f('fk_model_version_tool_id_tool'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_model_version'))
    )
    with op.batch_alter_table('model_version', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_model_version_tool_id'), ['tool_id'], unique=False)
    with op.batch_alter_table('tool', schema=None) as batch_op:  # tool <-> model_version cycle
        batch_op.create_foreign_key(op.f('fk_tool_active_model_id_model_version'), 'model_version',
                                    ['active_model_id'], ['id'], ondelete='SET NULL')

    op.create_table('sample',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('tool_id', sa.Integer(), nullable=False),
    sa.Column('image_key', sa.String(length=200), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('label', sa.String(length=100), nullable=False),
    sa.Column('source', sa.Enum('upload', 'capture', 'review', 'demo', 'import', name='sample_source', native_enum=False, create_constraint=True, length=16), nullable=False),
    sa.Column('width', sa.Integer(), nullable=False),
    sa.Column('height', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('deleted', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['tool_id'], ['tool.id'], name=op.f('fk_sample_tool_id_tool'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sample')),
    sa.UniqueConstraint('tool_id', 'sha256', name='tool_sha256')
    )
    with op.batch_alter_table('sample', schema=None) as batch_op:
        batch_op.create_index('ix_sample_tool_label', ['tool_id', 'deleted', 'label'], unique=False)

    op.create_table('inspection',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('tool_id', sa.Integer(), nullable=False),
    sa.Column('station', sa.String(length=100), nullable=False),
    sa.Column('model_version_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('decision', sa.Enum('pass', 'fail', 'review', name='decision', native_enum=False, create_constraint=True, length=16), nullable=False),
    sa.Column('label', sa.String(length=100), nullable=False),
    sa.Column('score', sa.Float(), nullable=False),
    sa.Column('scores', sa.JSON(), nullable=False),
    sa.Column('latency_ms', sa.Float(), nullable=False),
    sa.Column('image_key', sa.String(length=200), nullable=True),
    sa.Column('needs_review', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['model_version_id'], ['model_version.id'], name=op.f('fk_inspection_model_version_id_model_version'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['tool_id'], ['tool.id'], name=op.f('fk_inspection_tool_id_tool'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_inspection'))
    )
    with op.batch_alter_table('inspection', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_inspection_created_at'), ['created_at'], unique=False)
        batch_op.create_index('ix_inspection_review_queue', ['needs_review', 'tool_id', 'created_at'], unique=False)
        batch_op.create_index('ix_inspection_tool_time', ['tool_id', 'created_at'], unique=False)

    op.create_table('review',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('inspection_id', sa.Integer(), nullable=False),
    sa.Column('verdict', sa.String(length=100), nullable=False),
    sa.Column('reviewer', sa.String(length=100), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['inspection_id'], ['inspection.id'], name=op.f('fk_review_inspection_id_inspection'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_review')),
    sa.UniqueConstraint('inspection_id', name=op.f('uq_review_inspection_id'))
    )
    with op.batch_alter_table('review', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_review_created_at'), ['created_at'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('review', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_review_created_at'))

    op.drop_table('review')
    with op.batch_alter_table('inspection', schema=None) as batch_op:
        batch_op.drop_index('ix_inspection_tool_time')
        batch_op.drop_index('ix_inspection_review_queue')
        batch_op.drop_index(batch_op.f('ix_inspection_created_at'))

    op.drop_table('inspection')
    with op.batch_alter_table('sample', schema=None) as batch_op:
        batch_op.drop_index('ix_sample_tool_label')

    op.drop_table('sample')
    with op.batch_alter_table('model_version', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_model_version_tool_id'))

    with op.batch_alter_table('tool', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('fk_tool_active_model_id_model_version'), type_='foreignkey')
    op.drop_table('model_version')
    op.drop_table('tool')
