"""object store: a model version's artifact manifest (file name -> key, sha256, size), an inspection's map (issue 21)

Revision ID: 0013_objstore
Revises: 0013_fleet
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013_objstore"
down_revision = "0013_fleet"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("model_version") as batch:
        batch.add_column(sa.Column("artifact_manifest", sa.JSON(), nullable=True))
    with op.batch_alter_table("inspection") as batch:
        batch.add_column(sa.Column("map_key", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("inspection") as batch:
        batch.drop_column("map_key")
    with op.batch_alter_table("model_version") as batch:
        batch.drop_column("artifact_manifest")
