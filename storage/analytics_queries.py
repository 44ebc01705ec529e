"""Aggregate queries over inspections for analytics: every number is computed by the database.

The same statements run on SQLite and PostgreSQL. Dialect differences (time buckets, the hour of a
timestamp, ``floor``) live in small helpers. Constants inside grouped expressions are rendered as
literals: PostgreSQL rejects ``GROUP BY f($2)`` for a ``SELECT f($1)`` even when both are equal.
Functions take a Session and never commit.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import ColumnElement, Integer, Select, and_, cast, extract, func, literal_column, or_, select
from sqlalchemy.orm import Session

from storage.tables import Inspection, Review

Grain = Literal["hour", "day", "week"]
GRAINS: tuple[Grain, ...] = ("hour", "day", "week")


@dataclass(frozen=True)
class InspectionScope:
    """Which inspections a query covers: one tool, ``[start, end)`` (naive UTC) and optional filters.

    ``hours`` is a shift as ``(first hour, end hour)`` of the day; ``(22, 6)`` wraps past midnight.
    """

    tool_id: int
    start: datetime
    end: datetime
    station: str | None = None
    model_version_id: int | None = None
    hours: tuple[int, int] | None = None
    decision: str | None = None


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def _number(value: float) -> ColumnElement[Any]:
    """A numeric constant rendered inline (see the module docstring)."""
    text = str(int(value)) if float(value).is_integer() else repr(float(value))
    return literal_column(f"({text})")


def hour_of(session: Session, column: Any) -> ColumnElement[Any]:
    """The hour (0-23) of a timestamp column."""
    if _dialect(session) == "sqlite":
        return cast(func.strftime(literal_column("'%H'"), column), Integer)
    return cast(extract("hour", column), Integer)


def time_bucket(session: Session, column: Any, grain: Grain) -> ColumnElement[Any]:
    """The start of the hour / day / ISO week (Monday) of a timestamp column."""
    if grain not in GRAINS:
        raise ValueError(f"unknown time grain {grain!r}")
    if _dialect(session) == "sqlite":
        if grain == "hour":
            return func.strftime(literal_column("'%Y-%m-%d %H:00:00'"), column)
        if grain == "day":
            return func.date(column)
        return func.date(column, literal_column("'weekday 0'"), literal_column("'-6 days'"))
    return func.date_trunc(literal_column(f"'{grain}'"), column)


def floor_int(session: Session, expression: ColumnElement[Any]) -> ColumnElement[Any]:
    """``floor`` of a non-negative expression as an integer (SQLite's CAST truncates, which is floor there)."""
    if _dialect(session) == "sqlite":
        return cast(expression, Integer)
    return cast(func.floor(expression), Integer)


def conditions(session: Session, scope: InspectionScope) -> list[ColumnElement[bool]]:
    """The WHERE clauses of ``scope``."""
    where = [Inspection.tool_id == scope.tool_id, Inspection.created_at >= scope.start,
             Inspection.created_at < scope.end]
    if scope.station is not None:
        where.append(Inspection.station == scope.station)
    if scope.model_version_id is not None:
        where.append(Inspection.model_version_id == scope.model_version_id)
    if scope.decision is not None:
        where.append(Inspection.decision == scope.decision)
    if scope.hours is not None:
        first, end = scope.hours
        hour = hour_of(session, Inspection.created_at)
        within = and_(hour >= first, hour < end) if first < end else or_(hour >= first, hour < end)
        where.append(within)
    return where


def _scoped(session: Session, query: Select[Any], scope: InspectionScope) -> Select[Any]:
    return query.where(*conditions(session, scope))


@dataclass(frozen=True)
class Counts:
    """Totals of a scope: inspections, failed, sent to review, reviewed, reviewed with the model's label."""

    inspections: int
    failed: int
    to_review: int
    reviewed: int
    agreed: int


def counts(session: Session, scope: InspectionScope) -> Counts:
    """One pass over the scope (reviews joined) for the headline counts."""
    query = select(
        func.count(Inspection.id),
        func.count(Inspection.id).filter(Inspection.decision == "fail"),
        func.count(Inspection.id).filter(Inspection.decision == "review"),
        func.count(Review.id),
        func.count(Review.id).filter(Review.verdict == Inspection.label),
    ).select_from(Inspection).outerjoin(Review, Review.inspection_id == Inspection.id)
    row = session.execute(_scoped(session, query, scope)).one()
    return Counts(*(int(value or 0) for value in row))


def percentile(session: Session, scope: InspectionScope, column: Any, q: float, n: int) -> float | None:
    """The ``q`` quantile (0-1) of ``column`` over the ``n`` rows of ``scope``, exactly as numpy's default
    (linear interpolation), reading at most two rows: ``ORDER BY column LIMIT 2 OFFSET floor(q (n - 1))``."""
    if n <= 0:
        return None
    position = q * (n - 1)
    low = math.floor(position)
    query = _scoped(session, select(column), scope).order_by(column).offset(low).limit(2)
    values = [float(v) for v in session.scalars(query)]
    if not values:
        return None
    if len(values) == 1 or position == low:
        return values[0]
    return values[0] + (position - low) * (values[1] - values[0])


def rate_over_time(session: Session, scope: InspectionScope, grain: Grain) -> list[tuple[Any, int, int, int]]:
    """Per time bucket: ``(bucket start, inspections, failed, to review)``, oldest first."""
    bucket = time_bucket(session, Inspection.created_at, grain).label("bucket")
    query = select(
        bucket,
        func.count(Inspection.id),
        func.count(Inspection.id).filter(Inspection.decision == "fail"),
        func.count(Inspection.id).filter(Inspection.decision == "review"),
    )
    query = _scoped(session, query, scope).group_by(bucket).order_by(bucket)
    return [tuple(row) for row in session.execute(query)]


def defect_classes(session: Session, scope: InspectionScope, good_class: str) -> list[tuple[str, int]]:
    """Defects per class, most frequent first: the operator's verdict where there is a review, otherwise
    the model's label of a failed inspection. Parts judged good are not defects."""
    judged = func.coalesce(Review.verdict, Inspection.label).label("defect_class")
    query = (
        select(judged, func.count(Inspection.id).label("n"))
        .select_from(Inspection)
        .outerjoin(Review, Review.inspection_id == Inspection.id)
        .where(or_(Review.id.is_not(None), Inspection.decision == "fail"), judged != good_class)
    )
    query = _scoped(session, query, scope).group_by(judged).order_by(func.count(Inspection.id).desc(), judged)
    return [(str(name), int(n)) for name, n in session.execute(query)]


def confusion(session: Session, scope: InspectionScope) -> list[tuple[str, str, int]]:
    """Reviewed inspections per ``(model's label, operator's verdict)``."""
    query = (
        select(Inspection.label, Review.verdict, func.count(Inspection.id))
        .select_from(Inspection)
        .join(Review, Review.inspection_id == Inspection.id)
    )
    query = _scoped(session, query, scope).group_by(Inspection.label, Review.verdict)
    return [(str(a), str(b), int(n)) for a, b, n in session.execute(query.order_by(Inspection.label, Review.verdict))]


def value_range(session: Session, scope: InspectionScope, column: Any) -> tuple[float, float] | None:
    """``(min, max)`` of ``column`` in the scope, or None when it is empty."""
    low, high = session.execute(_scoped(session, select(func.min(column), func.max(column)), scope)).one()
    return None if low is None else (float(low), float(high))


def histogram(session: Session, scope: InspectionScope, column: Any, low: float, width: float,
              bins: int) -> list[int]:
    """Counts of ``column`` in ``bins`` bins ``[low + i width, low + (i + 1) width)``; values below ``low``
    go to the first bin, values at or above the top to the last (so the top edge is included)."""
    index = floor_int(session, (column - _number(low)) / _number(width)).label("bin")
    query = _scoped(session, select(index, func.count()), scope).group_by(index)
    result = [0] * bins
    for position, n in session.execute(query):
        result[min(max(int(position), 0), bins - 1)] += int(n)
    return result


def histogram_over_time(session: Session, scope: InspectionScope, column: Any, grain: Grain, low: float,
                        width: float, bins: int) -> list[tuple[Any, int, int]]:
    """``(bucket start, bin, count)`` of ``column`` per time bucket (bins as in :func:`histogram`)."""
    bucket = time_bucket(session, Inspection.created_at, grain).label("bucket")
    index = floor_int(session, (column - _number(low)) / _number(width)).label("bin")
    query = _scoped(session, select(bucket, index, func.count()), scope).group_by(bucket, index)
    merged: dict[tuple[Any, int], int] = {}
    for when, position, n in session.execute(query.order_by(bucket)):
        key = (when, min(max(int(position), 0), bins - 1))
        merged[key] = merged.get(key, 0) + int(n)
    return [(when, position, n) for (when, position), n in merged.items()]


def first_inspection_time(session: Session, model_version_id: int) -> datetime | None:
    """When the model version made its first recorded inspection."""
    return session.scalar(select(func.min(Inspection.created_at)).where(
        Inspection.model_version_id == model_version_id))


def stations(session: Session, tool_id: int) -> list[str]:
    """The stations that inspected for the tool, alphabetically."""
    query = select(Inspection.station).where(Inspection.tool_id == tool_id).distinct().order_by(Inspection.station)
    return list(session.scalars(query))


RECENT_COLUMNS = ("id", "created_at", "station", "model_version_id", "decision", "label", "score",
                  "anomaly_score", "latency_ms", "image_key", "needs_review", "verdict", "reviewer", "opinions")


def _rows_query(session: Session, scope: InspectionScope) -> Select[Any]:
    query = (
        select(Inspection.id, Inspection.created_at, Inspection.station, Inspection.model_version_id,
               Inspection.decision, Inspection.label, Inspection.score, Inspection.anomaly_score,
               Inspection.latency_ms, Inspection.image_key, Inspection.needs_review, Review.verdict,
               Review.reviewer, Inspection.opinions)
        .select_from(Inspection)
        .outerjoin(Review, Review.inspection_id == Inspection.id)
    )
    return _scoped(session, query, scope)


def recent(session: Session, scope: InspectionScope, limit: int) -> list[Sequence[Any]]:
    """The newest ``limit`` inspections of the scope with their review (columns: RECENT_COLUMNS)."""
    query = _rows_query(session, scope).order_by(Inspection.created_at.desc(), Inspection.id.desc()).limit(limit)
    return [tuple(row) for row in session.execute(query)]


def stream_rows(session: Session, scope: InspectionScope, chunk: int) -> Iterator[list[Sequence[Any]]]:
    """Every inspection of the scope, oldest first, in lists of at most ``chunk`` rows (a server-side
    cursor where the driver has one; never the whole result in memory)."""
    query = _rows_query(session, scope).order_by(Inspection.created_at, Inspection.id)
    result = session.execute(query.execution_options(yield_per=chunk))
    for partition in result.partitions(chunk):
        yield [tuple(row) for row in partition]
