"""tamper-evident audit trail: hash-chained audit_log rows, a chain head, append-only triggers (issue 20)

Revision ID: 0013_audit
Revises: 0013_rollup
Create Date: 2026-12-06

Existing rows are chained in id order (seq 1, 2, ...), as if they had been appended by this version.
``audit_log.tool_id`` loses its foreign key: deleting a tool set it to NULL, which would rewrite
chained rows. Triggers on both backends refuse UPDATE and DELETE of ``audit_log`` (and TRUNCATE on
PostgreSQL) and DELETE of the head row; they are a first line only: whoever owns the database can drop
them, and ``python -m core audit verify`` is the proof.

A later migration that rebuilds ``audit_log`` on SQLite (``batch_alter_table`` copies the table) drops
these triggers with the old table and must create them again (``create_triggers``).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from storage.audit_chain import GENESIS, HEAD_ID, digest

revision = "0013_audit"
down_revision = "0013_rollup"
branch_labels = None
depends_on = None

_SQLITE_TRIGGERS = {
    "audit_log_no_update": "BEFORE UPDATE ON audit_log",
    "audit_log_no_delete": "BEFORE DELETE ON audit_log",
    "audit_chain_head_no_delete": "BEFORE DELETE ON audit_chain_head",
}
_MESSAGE = "the audit trail is append-only"


def create_triggers() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name, when in _SQLITE_TRIGGERS.items():
            op.execute(f"CREATE TRIGGER {name} {when} BEGIN SELECT RAISE(ABORT, '{_MESSAGE}'); END")
        return
    op.execute(f"""CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION '{_MESSAGE}: % on % refused', TG_OP, TG_TABLE_NAME; END $$""")
    op.execute("CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log "
               "FOR EACH ROW EXECUTE FUNCTION audit_append_only()")
    op.execute("CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log "
               "FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only()")
    op.execute("CREATE TRIGGER audit_chain_head_no_delete BEFORE DELETE OR TRUNCATE ON audit_chain_head "
               "FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only()")


def drop_triggers() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name in _SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
        return
    op.execute("DROP TRIGGER IF EXISTS audit_chain_head_no_delete ON audit_chain_head")
    op.execute("DROP TRIGGER IF EXISTS audit_log_no_truncate ON audit_log")
    op.execute("DROP TRIGGER IF EXISTS audit_log_append_only ON audit_log")
    op.execute("DROP FUNCTION IF EXISTS audit_append_only()")


def _chain_existing_rows() -> None:
    """Give every existing row its seq and hashes (id order) and write the head row."""
    log = sa.table("audit_log", sa.column("id", sa.Integer), sa.column("seq", sa.Integer),
                   sa.column("created_at", sa.DateTime), sa.column("actor", sa.String),
                   sa.column("device", sa.String), sa.column("action", sa.String), sa.column("target", sa.String),
                   sa.column("tool_id", sa.Integer), sa.column("details", sa.JSON),
                   sa.column("prev_hash", sa.String), sa.column("hash", sa.String))
    bind = op.get_bind()
    rows = bind.execute(sa.select(log.c.id, log.c.created_at, log.c.actor, log.c.device, log.c.action,
                                  log.c.target, log.c.tool_id, log.c.details).order_by(log.c.id)).all()
    seq, prev_hash = 0, GENESIS
    for row in rows:
        seq += 1
        entry_hash = digest(seq=seq, created_at=row.created_at, actor=row.actor, device=row.device,
                            action=row.action, target=row.target, tool_id=row.tool_id, details=row.details,
                            prev_hash=prev_hash)
        bind.execute(log.update().where(log.c.id == row.id).values(seq=seq, prev_hash=prev_hash, hash=entry_hash))
        prev_hash = entry_hash
    head = sa.table("audit_chain_head", sa.column("id", sa.Integer), sa.column("seq", sa.Integer),
                    sa.column("hash", sa.String))
    bind.execute(head.insert().values(id=HEAD_ID, seq=seq, hash=prev_hash))


def upgrade() -> None:
    op.create_table(
        "audit_chain_head",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_chain_head")),
    )
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_constraint("fk_audit_log_tool_id_tool", type_="foreignkey")
        batch_op.add_column(sa.Column("seq", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("prev_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("hash", sa.String(length=64), nullable=True))
    _chain_existing_rows()
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.alter_column("seq", existing_type=sa.Integer(), nullable=False)
        batch_op.alter_column("prev_hash", existing_type=sa.String(length=64), nullable=False)
        batch_op.alter_column("hash", existing_type=sa.String(length=64), nullable=False)
        batch_op.create_index(batch_op.f("ix_audit_log_seq"), ["seq"], unique=False)
    create_triggers()


def downgrade() -> None:
    drop_triggers()
    # rows of deleted tools cannot keep their tool id under the foreign key again
    op.execute("UPDATE audit_log SET tool_id = NULL WHERE tool_id NOT IN (SELECT id FROM tool)")
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_log_seq"))
        batch_op.drop_column("hash")
        batch_op.drop_column("prev_hash")
        batch_op.drop_column("seq")
        batch_op.create_foreign_key(batch_op.f("fk_audit_log_tool_id_tool"), "tool", ["tool_id"], ["id"],
                                    ondelete="SET NULL")
    op.drop_table("audit_chain_head")
