"""Queries and writes on the studio's tables. Functions take a Session and never commit:
the calling service owns the unit of work."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Date, cast, func, select, update
from sqlalchemy.orm import Session

from storage import analytics_queries
from storage.tables import Inspection, ModelVersion, Review, Sample, Tool


# --- tools -------------------------------------------------------------------------------------
def add_tool(session: Session, name: str, class_names: list[str], good_class: str) -> Tool:
    tool = Tool(name=name, class_names=class_names, good_class=good_class, settings={})
    session.add(tool)
    session.flush()
    return tool


def get_tool(session: Session, name: str) -> Tool | None:
    return session.scalar(select(Tool).where(Tool.name == name))


def get_tool_by_id(session: Session, tool_id: int) -> Tool | None:
    return session.get(Tool, tool_id)


def list_tools(session: Session) -> list[Tool]:
    return list(session.scalars(select(Tool).order_by(Tool.name)))


# --- samples -----------------------------------------------------------------------------------
def sample_exists(session: Session, tool_id: int, sha256: str) -> bool:
    query = select(Sample.id).where(Sample.tool_id == tool_id, Sample.sha256 == sha256)
    return session.scalar(query) is not None


def add_sample(session: Session, **fields: Any) -> Sample:
    sample = Sample(**fields)
    session.add(sample)
    session.flush()
    return sample


def list_samples(session: Session, tool_id: int, limit: int | None = None) -> list[Sample]:
    query = (
        select(Sample)
        .where(Sample.tool_id == tool_id, Sample.deleted.is_(False))
        .order_by(Sample.id.desc())
        .limit(limit)
    )
    return list(session.scalars(query))


def class_counts(session: Session, tool_id: int) -> dict[str, int]:
    query = (
        select(Sample.label, func.count())
        .where(Sample.tool_id == tool_id, Sample.deleted.is_(False))
        .group_by(Sample.label)
    )
    return {label: count for label, count in session.execute(query)}


# --- model versions ----------------------------------------------------------------------------
def add_model_version(session: Session, **fields: Any) -> ModelVersion:
    version = ModelVersion(**fields)
    session.add(version)
    session.flush()
    return version


def get_model_version(session: Session, version_id: int) -> ModelVersion | None:
    return session.get(ModelVersion, version_id)


def list_model_versions(session: Session, tool_id: int) -> list[ModelVersion]:
    query = select(ModelVersion).where(ModelVersion.tool_id == tool_id)
    return list(session.scalars(query.order_by(ModelVersion.id.desc())))


# --- inspections and reviews -------------------------------------------------------------------
def add_inspection(session: Session, **fields: Any) -> Inspection:
    """Add one inspection and count it in the analytics rollups, in the caller's transaction."""
    inspection = Inspection(**fields)
    session.add(inspection)
    session.flush()
    analytics_queries.roll_up(session, Inspection.id == inspection.id)
    return inspection


def inspection_id_by_key(session: Session, record_key: str) -> int | None:
    """The inspection written with this idempotency key, if any."""
    return session.scalar(select(Inspection.id).where(Inspection.record_key == record_key))


def review_queue(session: Session, tool_id: int, limit: int = 50) -> list[Inspection]:
    """Inspections of a tool that need a person and have no review yet, oldest first."""
    query = (
        select(Inspection)
        .outerjoin(Review, Review.inspection_id == Inspection.id)
        .where(Inspection.tool_id == tool_id, Inspection.needs_review.is_(True), Review.id.is_(None))
        .order_by(Inspection.created_at, Inspection.id)
        .limit(limit)
    )
    return list(session.scalars(query))


def count_review_queue(session: Session, tool_id: int) -> int:
    query = (
        select(func.count())
        .select_from(Inspection)
        .outerjoin(Review, Review.inspection_id == Inspection.id)
        .where(Inspection.tool_id == tool_id, Inspection.needs_review.is_(True), Review.id.is_(None))
    )
    return session.scalar(query) or 0


def add_review(session: Session, inspection_id: int, verdict: str, reviewer: str) -> Review:
    """Add a verdict and count it in the analytics review rollups, in the caller's transaction."""
    review = Review(inspection_id=inspection_id, verdict=verdict, reviewer=reviewer)
    session.add(review)
    session.flush()
    analytics_queries.roll_up_reviews(session, Review.id == review.id)
    return review


def delete_review(session: Session, review: Review) -> None:
    """Take a verdict back, from the analytics review rollups too, in the caller's transaction."""
    analytics_queries.roll_up_reviews(session, Review.id == review.id, sign=-1)
    session.delete(review)
    session.flush()


def get_inspection(session: Session, inspection_id: int) -> Inspection | None:
    return session.get(Inspection, inspection_id)


def _day_of(session: Session, column: Any) -> Any:
    """The calendar day of a timestamp column, as each dialect spells it."""
    if session.get_bind().dialect.name == "sqlite":
        return func.date(column)
    return cast(column, Date)


def daily_inspection_stats(
    session: Session, tool_id: int, start: datetime, end: datetime
) -> list[tuple[Any, int, int, int]]:
    """Per day in ``[start, end)``: ``(day, inspections, failed, to_review)``, aggregated in SQL."""
    day = _day_of(session, Inspection.created_at).label("day")
    query = (
        select(
            day,
            func.count(),
            func.count().filter(Inspection.decision == "fail"),
            func.count().filter(Inspection.decision == "review"),
        )
        .where(
            Inspection.tool_id == tool_id,
            Inspection.created_at >= start,
            Inspection.created_at < end,
        )
        .group_by(day)
        .order_by(day)
    )
    return [tuple(row) for row in session.execute(query)]


# --- dataset management (issue 7) --------------------------------------------------------------
def sample_fingerprints(session: Session, tool_id: int) -> tuple[set[str], list[int], list[str]]:
    """Content hashes of every sample of a tool (deleted ones too: they keep their unique hash),
    and ids and dHashes of the live samples that have one."""
    rows = session.execute(
        select(Sample.id, Sample.sha256, Sample.phash, Sample.deleted).where(Sample.tool_id == tool_id)
    ).all()
    live = [(r.id, r.phash) for r in rows if r.phash is not None and not r.deleted]
    return {r.sha256 for r in rows}, [i for i, _ in live], [h for _, h in live]


def sample_filter(
    tool_id: int,
    labels: list[str] | None = None,
    sources: list[str] | None = None,
    splits: list[str] | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    deleted: bool = False,
) -> list[Any]:
    """WHERE clauses of a dataset browser query (``start`` inclusive, ``end`` exclusive)."""
    clauses: list[Any] = [Sample.tool_id == tool_id, Sample.deleted.is_(deleted)]
    if labels:
        clauses.append(Sample.label.in_(labels))
    if sources:
        clauses.append(Sample.source.in_(sources))
    if splits:
        clauses.append(Sample.split.in_(splits))
    if start is not None:
        clauses.append(Sample.created_at >= start)
    if end is not None:
        clauses.append(Sample.created_at < end)
    return clauses


def count_samples(session: Session, clauses: list[Any]) -> int:
    return session.scalar(select(func.count()).select_from(Sample).where(*clauses)) or 0


def page_of_samples(session: Session, clauses: list[Any], offset: int, limit: int | None) -> list[Sample]:
    """One page of samples, newest first."""
    query = select(Sample).where(*clauses).order_by(Sample.id.desc()).offset(offset).limit(limit)
    return list(session.scalars(query))


def samples_by_ids(session: Session, tool_id: int, ids: list[int]) -> list[Sample]:
    query = select(Sample).where(Sample.tool_id == tool_id, Sample.id.in_(ids)).order_by(Sample.id)
    return list(session.scalars(query))


def update_samples(session: Session, tool_id: int, ids: list[int], **values: Any) -> int:
    """Set ``values`` on the samples ``ids`` of a tool; returns how many rows changed."""
    if not ids:
        return 0
    result = session.execute(
        update(Sample).where(Sample.tool_id == tool_id, Sample.id.in_(ids)).values(**values)
    )
    return result.rowcount or 0


def dataset_stats(session: Session, tool_id: int) -> list[tuple[str, str, bool, int]]:
    """``(label, split, deleted, count)`` per group, aggregated in SQL."""
    query = (
        select(Sample.label, Sample.split, Sample.deleted, func.count())
        .where(Sample.tool_id == tool_id)
        .group_by(Sample.label, Sample.split, Sample.deleted)
    )
    return [tuple(row) for row in session.execute(query)]


def live_phashes(session: Session, tool_id: int) -> list[tuple[int, str]]:
    query = select(Sample.id, Sample.phash).where(
        Sample.tool_id == tool_id, Sample.deleted.is_(False), Sample.phash.is_not(None)
    ).order_by(Sample.id)
    return [(row.id, row.phash) for row in session.execute(query)]
