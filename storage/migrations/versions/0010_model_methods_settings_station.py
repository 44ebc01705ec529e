"""model methods, typed tool settings, recipe on inspections

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06

* ``model_version.kind`` (an enum of two kinds) becomes ``method``, a name in ``models.registry``, so a
  new model method needs no schema change; ``tool.active_model_id`` / ``active_anomaly_id`` (one column
  per kind) give way to the versions' own ``status = 'active'``, at most one per tool and method (a
  partial unique index). Versions the old columns pointed at are made active, other active ones retired.
* ``tool.settings`` takes the typed shape of ``core.tool_settings.ToolSettings``: ``threshold`` /
  ``review_band`` become the classifier's entries of ``thresholds`` / ``review_bands``,
  ``anomaly_threshold`` the anomaly model's (when it was moved from its default 0.5), and the live
  options lose their copies of the threshold and band.
* ``inspection.recipe``: the product recipe a line station inspected under.
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

ACTIVE = sa.text("status = 'active'")
LIVE_OPTIONS = ("smoothing", "tta", "heatmap", "heatmap_opacity", "trigger")
KEPT = ("policy", "audit_share", "holdout_share", "shifts")


def typed_settings(old: dict[str, Any]) -> dict[str, Any]:
    """The pre-0010 settings bag in the typed shape (keys the typed settings do not know are dropped)."""
    new: dict[str, Any] = {key: old[key] for key in KEPT if key in old}
    thresholds, bands = {}, {}
    if "threshold" in old:
        thresholds["classifier"] = float(old["threshold"])
    if "review_band" in old:
        bands["classifier"] = float(old["review_band"])
    if "anomaly_threshold" in old and float(old["anomaly_threshold"]) != 0.5:
        thresholds["anomaly"] = float(old["anomaly_threshold"])
    new["thresholds"], new["review_bands"] = thresholds, bands
    live = dict(old.get("live") or {})
    if "keep_pass_share" in live:
        new["keep_pass_share"] = float(live["keep_pass_share"])
    new["live"] = {key: live[key] for key in LIVE_OPTIONS if key in live}
    return new


def _convert_settings(connection: sa.Connection) -> None:
    tool = sa.table("tool", sa.column("id", sa.Integer), sa.column("settings", sa.JSON))
    for tool_id, settings in connection.execute(sa.select(tool.c.id, tool.c.settings)).all():
        old = json.loads(settings) if isinstance(settings, str) else dict(settings or {})
        connection.execute(sa.update(tool).where(tool.c.id == tool_id).values(settings=typed_settings(old)))


def upgrade() -> None:
    connection = op.get_bind()
    # the versions the per-kind columns point at are the active ones, and no others
    connection.execute(sa.text(
        "UPDATE model_version SET status = 'retired' WHERE status = 'active' AND id NOT IN "
        "(SELECT active_model_id FROM tool WHERE active_model_id IS NOT NULL UNION "
        " SELECT active_anomaly_id FROM tool WHERE active_anomaly_id IS NOT NULL)"))
    connection.execute(sa.text(
        "UPDATE model_version SET status = 'active' WHERE id IN "
        "(SELECT active_model_id FROM tool WHERE active_model_id IS NOT NULL UNION "
        " SELECT active_anomaly_id FROM tool WHERE active_anomaly_id IS NOT NULL)"))
    with op.batch_alter_table('model_version', schema=None) as batch_op:
        batch_op.add_column(sa.Column('method', sa.String(length=32), nullable=True))
    connection.execute(sa.text("UPDATE model_version SET method = kind"))
    with op.batch_alter_table('model_version', schema=None) as batch_op:
        batch_op.alter_column('method', existing_type=sa.String(length=32), nullable=False)
        batch_op.drop_constraint(op.f('ck_model_version_model_kind'), type_='check')
        batch_op.drop_column('kind')
        batch_op.create_index('uq_model_version_active_method', ['tool_id', 'method'], unique=True,
                              sqlite_where=ACTIVE, postgresql_where=ACTIVE)
    with op.batch_alter_table('tool', schema=None) as batch_op:
        batch_op.drop_constraint('fk_tool_active_anomaly_id_model_version', type_='foreignkey')
        batch_op.drop_constraint('fk_tool_active_model_id_model_version', type_='foreignkey')
        batch_op.drop_column('active_anomaly_id')
        batch_op.drop_column('active_model_id')
    with op.batch_alter_table('inspection', schema=None) as batch_op:
        batch_op.add_column(sa.Column('recipe', sa.String(length=100), nullable=True))
    _convert_settings(connection)


def bag_settings(new: dict[str, Any]) -> dict[str, Any]:
    """The typed settings back in the pre-0010 bag (the inverse of ``typed_settings``)."""
    old: dict[str, Any] = {key: new[key] for key in KEPT if new.get(key) is not None}
    thresholds, bands = new.get("thresholds") or {}, new.get("review_bands") or {}
    if "classifier" in thresholds:
        old["threshold"] = thresholds["classifier"]
    if "classifier" in bands:
        old["review_band"] = bands["classifier"]
    if "anomaly" in thresholds:
        old["anomaly_threshold"] = thresholds["anomaly"]
    old["live"] = {**(new.get("live") or {}), **({"keep_pass_share": new["keep_pass_share"]}
                                                  if "keep_pass_share" in new else {})}
    return old


def downgrade() -> None:
    connection = op.get_bind()
    tool = sa.table("tool", sa.column("id", sa.Integer), sa.column("settings", sa.JSON))
    for tool_id, settings in connection.execute(sa.select(tool.c.id, tool.c.settings)).all():
        new = json.loads(settings) if isinstance(settings, str) else dict(settings or {})
        connection.execute(sa.update(tool).where(tool.c.id == tool_id).values(settings=bag_settings(new)))
    with op.batch_alter_table('inspection', schema=None) as batch_op:
        batch_op.drop_column('recipe')
    with op.batch_alter_table('tool', schema=None) as batch_op:
        batch_op.add_column(sa.Column('active_model_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('active_anomaly_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key('fk_tool_active_model_id_model_version', 'model_version',
                                    ['active_model_id'], ['id'], ondelete='SET NULL', use_alter=True)
        batch_op.create_foreign_key('fk_tool_active_anomaly_id_model_version', 'model_version',
                                    ['active_anomaly_id'], ['id'], ondelete='SET NULL', use_alter=True)
    for column, method in (("active_model_id", "classifier"), ("active_anomaly_id", "anomaly")):
        connection.execute(sa.text(
            f"UPDATE tool SET {column} = (SELECT id FROM model_version WHERE model_version.tool_id = tool.id "
            f"AND method = '{method}' AND status = 'active')"))
    connection.execute(sa.text("DELETE FROM model_version WHERE method NOT IN ('classifier', 'anomaly')"))
    with op.batch_alter_table('model_version', schema=None) as batch_op:
        batch_op.drop_index('uq_model_version_active_method')
        batch_op.add_column(sa.Column('kind', sa.Enum('classifier', 'anomaly', name='model_kind', native_enum=False,
                                                      create_constraint=True, length=16), nullable=True))
    connection.execute(sa.text("UPDATE model_version SET kind = method"))
    with op.batch_alter_table('model_version', schema=None) as batch_op:
        batch_op.alter_column('kind', existing_type=sa.String(length=16), nullable=False)
        batch_op.drop_column('method')
