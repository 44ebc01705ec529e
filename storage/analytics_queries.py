"""Aggregate queries over inspections for analytics: every number is computed by the database.

The same statements run on SQLite and PostgreSQL. Dialect differences (time buckets, the hour of a
timestamp, ``floor``) live in small helpers. Constants inside grouped expressions are rendered as
literals: PostgreSQL rejects ``GROUP BY f($2)`` for a ``SELECT f($1)`` even when both are equal.
Functions take a Session and never commit.
"""

from __future__ import annotations

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
    if _dialect(session) == "sqlite":  # SQLAlchemy stores "YYYY-MM-DD HH:MM:SS.ffffff": cutting is cheapest
        if grain == "hour":
            return func.substr(column, literal_column("1"), literal_column("13")).concat(literal_column("':00:00'"))
        if grain == "day":
            return func.substr(column, literal_column("1"), literal_column("10"))
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


def decisions(session: Session, scope: InspectionScope) -> dict[str, int]:
    """Inspections per decision (``pass`` / ``fail`` / ``review``)."""
    query = _scoped(session, select(Inspection.decision, func.count()), scope).group_by(Inspection.decision)
    return {str(decision): int(n) for decision, n in session.execute(query)}


def decision_score_cube(session: Session, scope: InspectionScope, grain: Grain,
                        bins: int) -> list[tuple[Any, str, int, int, float, float]]:
    """``(bucket start, decision, score bin, count, min latency, max latency)`` with ``bins`` equal score
    bins of [0, 1] (1.0 in the last): one pass gives the counts, the defect rate over time, the score
    distributions over time and the latency range."""
    bucket = time_bucket(session, Inspection.created_at, grain).label("bucket")
    index = floor_int(session, (Inspection.score - _number(0)) / _number(1 / bins)).label("bin")
    query = select(bucket, Inspection.decision, index, func.count(), func.min(Inspection.latency_ms),
                   func.max(Inspection.latency_ms))
    query = _scoped(session, query, scope).group_by(bucket, Inspection.decision, index).order_by(bucket)
    return [(when, str(decision), min(max(int(position), 0), bins - 1), int(n), float(low), float(high))
            for when, decision, position, n, low, high in session.execute(query)]


def labels_of(session: Session, scope: InspectionScope, decision: str) -> dict[str, int]:
    """Inspections per model label among those with ``decision``."""
    query = _scoped(session, select(Inspection.label, func.count()), scope).where(Inspection.decision == decision)
    return {str(label): int(n) for label, n in session.execute(query.group_by(Inspection.label))}


def review_outcomes(session: Session, scope: InspectionScope) -> list[tuple[str, str, str, int]]:
    """Reviewed inspections per ``(decision, model's label, operator's verdict)``."""
    query = (
        select(Inspection.decision, Inspection.label, Review.verdict, func.count())
        .select_from(Review)
        .join(Inspection, Review.inspection_id == Inspection.id)
    )
    query = _scoped(session, query, scope).group_by(Inspection.decision, Inspection.label, Review.verdict)
    return [(str(d), str(label), str(v), int(n)) for d, label, v, n in session.execute(query)]


def ordered_values(session: Session, scope: InspectionScope, column: Any, offset: int, limit: int) -> list[float]:
    """``limit`` values of ``column`` from the 0-based ``offset`` in ascending order
    (``ORDER BY ... LIMIT ... OFFSET``: the database keeps only the smallest ``offset + limit`` while sorting)."""
    query = _scoped(session, select(column), scope).order_by(column).offset(offset).limit(limit)
    return [float(value) for value in session.scalars(query)]


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
