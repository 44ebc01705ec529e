"""inspection.record_key: the idempotency key of an inspection a station spooled while the database was away
(issue 21); a replay that finds its key already written skips it, so a spool is written exactly once

Revision ID: 0015_plant
Revises: 0013_auth
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015_plant"
down_revision = "0013_auth"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("inspection") as batch:
        batch.add_column(sa.Column("record_key", sa.String(length=36), nullable=True))
        batch.create_unique_constraint("uq_inspection_record_key", ["record_key"])


def downgrade() -> None:
    with op.batch_alter_table("inspection") as batch:
        batch.drop_constraint("uq_inspection_record_key", type_="unique")
        batch.drop_column("record_key")
