"""dataset management: sample split, soft-delete time, thumbnail, mask, perceptual hash

Revision ID: 0007
Revises: 0002
Create Date: 2026-11-25

Existing samples are in the training split, with no thumbnail (made on first view), no mask and
no perceptual hash yet. The browser filters on label, source, split and date: each has an index.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('sample', schema=None) as batch_op:
        batch_op.add_column(sa.Column('split', sa.Enum('train', 'held_out', name='sample_split', native_enum=False,
                                                       create_constraint=True, length=16),
                                      nullable=False, server_default='train'))
        batch_op.add_column(sa.Column('deleted_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('thumb_key', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('mask_key', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('phash', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('original_name', sa.String(length=300), nullable=True))
        batch_op.create_index('ix_sample_tool_source', ['tool_id', 'deleted', 'source'], unique=False)
        batch_op.create_index('ix_sample_tool_split', ['tool_id', 'deleted', 'split'], unique=False)
        batch_op.create_index('ix_sample_tool_created', ['tool_id', 'deleted', 'created_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('sample', schema=None) as batch_op:
        batch_op.drop_index('ix_sample_tool_created')
        batch_op.drop_index('ix_sample_tool_split')
        batch_op.drop_index('ix_sample_tool_source')
        batch_op.drop_column('original_name')
        batch_op.drop_column('phash')
        batch_op.drop_column('mask_key')
        batch_op.drop_column('thumb_key')
        batch_op.drop_column('deleted_at')
        batch_op.drop_constraint(batch_op.f('ck_sample_sample_split'), type_='check')
        batch_op.drop_column('split')
