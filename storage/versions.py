"""Model-version life cycle queries: activate one of a kind, delete, samples added since a version."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from storage.tables import ModelVersion, Sample, Tool


def set_active(session: Session, tool: Tool, version: ModelVersion) -> ModelVersion | None:
    """Make ``version`` the tool's active model of its kind; returns the one it replaces (now retired)."""
    previous_id = tool.active_anomaly_id if version.kind == "anomaly" else tool.active_model_id
    session.execute(
        update(ModelVersion)
        .where(ModelVersion.tool_id == tool.id, ModelVersion.kind == version.kind, ModelVersion.status == "active",
               ModelVersion.id != version.id)
        .values(status="retired")
        .execution_options(synchronize_session="fetch")
    )
    version.status = "active"
    if version.kind == "anomaly":
        tool.active_anomaly_id = version.id
    else:
        tool.active_model_id = version.id
    session.flush()
    return session.get(ModelVersion, previous_id) if previous_id not in (None, version.id) else None


def delete_version(session: Session, version: ModelVersion) -> None:
    session.execute(delete(ModelVersion).where(ModelVersion.id == version.id))


def samples_added_since(session: Session, tool_id: int, since: datetime | None) -> dict[str, int]:
    """Training samples (not held out, not deleted) per class added after ``since`` (all when None)."""
    query = (select(Sample.label, func.count())
             .where(Sample.tool_id == tool_id, Sample.deleted.is_(False), Sample.split == "train")
             .group_by(Sample.label))
    if since is not None:
        query = query.where(Sample.created_at > since)
    return {label: int(n) for label, n in session.execute(query).all()}


def holdout_samples(session: Session, tool_id: int) -> list[Sample]:
    query = (select(Sample).where(Sample.tool_id == tool_id, Sample.deleted.is_(False), Sample.split == "held_out")
             .order_by(Sample.id))
    return list(session.scalars(query))
