"""Model-version life cycle queries: activate one per method, delete, samples added since a version."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from storage.tables import ModelVersion, Sample, Tool


def set_active(session: Session, tool: Tool, version: ModelVersion) -> ModelVersion | None:
    """Make ``version`` the tool's active model of its method; returns the one it replaces (now retired)."""
    previous = active_versions(session, tool.id).get(version.method)
    session.execute(
        update(ModelVersion)
        .where(ModelVersion.tool_id == tool.id, ModelVersion.method == version.method,
               ModelVersion.status == "active", ModelVersion.id != version.id)
        .values(status="retired")
        .execution_options(synchronize_session="fetch")
    )
    version.status = "active"
    session.flush()
    return previous if previous is not None and previous.id != version.id else None


def active_versions(session: Session, tool_id: int) -> dict[str, ModelVersion]:
    """The tool's active version of each method (at most one each: a partial unique index)."""
    query = select(ModelVersion).where(ModelVersion.tool_id == tool_id, ModelVersion.status == "active")
    return {version.method: version for version in session.scalars(query.order_by(ModelVersion.method))}


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
