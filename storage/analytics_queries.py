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
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from storage.rollup_tables import (
    DailyInspectionRollup,
    DailyLatencyRollup,
    DailyReviewRollup,
    InspectionRollup,
    LatencyRollup,
    ReviewRollup,
)
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


FINE_SCORE_BINS = 100  # score bins of the rollup and of drift: floor(score / 0.01), clipped to 0..99
LATENCY_BINS_PER_E = 20  # latency bin b holds ln(1 + ms) in [b / 20, (b + 1) / 20): about 5 % wide


def fine_score_bin(session: Session, score: Any) -> ColumnElement[Any]:
    """The fine score bin of a score (not clipped: callers clip to ``0..FINE_SCORE_BINS - 1``)."""
    return floor_int(session, (score - _number(0)) / _number(1 / FINE_SCORE_BINS))


def latency_bin(session: Session, latency_ms: Any) -> ColumnElement[Any]:
    """The logarithmic latency bin ``floor(ln(1 + ms) * LATENCY_BINS_PER_E)``."""
    return floor_int(session, func.ln(_number(1) + latency_ms) * _number(LATENCY_BINS_PER_E))


Tier = Literal["hour", "day"]
TIERS: tuple[Tier, ...] = ("hour", "day")
_ROLLUPS = {"hour": (InspectionRollup, LatencyRollup, ReviewRollup),
            "day": (DailyInspectionRollup, DailyLatencyRollup, DailyReviewRollup)}


def period_start(session: Session, column: Any, tier: Tier) -> ColumnElement[Any]:
    """The start of the hour / UTC day of a timestamp, stored as the ORM stores timestamps (so that it compares)."""
    if _dialect(session) == "sqlite":
        cut, rest = (13, "':00:00.000000'") if tier == "hour" else (10, "' 00:00:00.000000'")
        return func.substr(column, literal_column("1"), literal_column(str(cut))).concat(literal_column(rest))
    return func.date_trunc(literal_column(f"'{tier}'"), column)


Source = Literal["inspections", "rollup"]
SOURCES: tuple[Source, ...] = ("inspections", "rollup")


@dataclass(frozen=True)
class _View:
    """The columns a query reads: from the inspection table itself or from a rollup of it."""

    time: Any
    tool_id: Any
    station: Any
    model_version_id: Any
    decision: Any
    label: Any
    count: ColumnElement[Any]
    score_bin: Any
    latency_bin: Any
    verdict: Any = None


def whole_hours(scope: InspectionScope) -> bool:
    """Whether the rollup can answer for ``scope``: it starts and ends on whole hours."""
    return all(t.minute == t.second == t.microsecond == 0 for t in (scope.start, scope.end))


def rollup_tier(scope: InspectionScope, grain: Grain = "day") -> Tier:
    """The coarsest rollup that answers ``scope`` in ``grain`` buckets exactly: the daily one for whole
    UTC days without a shift (and buckets of a day or more), the hourly one otherwise."""
    whole_days = whole_hours(scope) and scope.start.hour == scope.end.hour == 0
    return "day" if whole_days and scope.hours is None and grain != "hour" else "hour"


Rollup = Literal["counts", "latencies", "reviews"]


def _view(session: Session, source: Source, scope: InspectionScope, rollup: Rollup = "counts",
          grain: Grain = "day") -> _View:
    """``source``'s columns for ``scope``; ``rollup`` picks the rollup (counts with label and score,
    latencies, or reviews with label and verdict), ``grain`` the time buckets the query groups by (see
    ``rollup_tier``)."""
    if source == "inspections":
        return _View(Inspection.created_at, Inspection.tool_id, Inspection.station, Inspection.model_version_id,
                     Inspection.decision, Inspection.label, func.count(), fine_score_bin(session, Inspection.score),
                     latency_bin(session, Inspection.latency_ms))
    if source != "rollup":
        raise ValueError(f"unknown analytics source {source!r}")
    tier = rollup_tier(scope, grain)
    r = _ROLLUPS[tier][("counts", "latencies", "reviews").index(rollup)]
    return _View(getattr(r, tier), r.tool_id, r.station, r.model_version_id, r.decision, getattr(r, "label", None),
                 func.sum(r.count), getattr(r, "score_bin", None), getattr(r, "latency_bin", None),
                 getattr(r, "verdict", None))


def conditions(session: Session, scope: InspectionScope, view: _View | None = None) -> list[ColumnElement[bool]]:
    """The WHERE clauses of ``scope`` over ``view`` (the inspection table by default)."""
    v = view or _view(session, "inspections", scope)
    if v.tool_id is not Inspection.tool_id and not whole_hours(scope):
        raise ValueError("the rollup answers for whole hours only")
    where = [v.tool_id == scope.tool_id, v.time >= scope.start, v.time < scope.end]
    if scope.station is not None:
        where.append(v.station == scope.station)
    if scope.model_version_id is not None:
        where.append(v.model_version_id == scope.model_version_id)
    if scope.decision is not None:
        where.append(v.decision == scope.decision)
    if scope.hours is not None:
        first, end = scope.hours
        hour = hour_of(session, v.time)
        within = and_(hour >= first, hour < end) if first < end else or_(hour >= first, hour < end)
        where.append(within)
    return where


def _scoped(session: Session, query: Select[Any], scope: InspectionScope) -> Select[Any]:
    return query.where(*conditions(session, scope))


def decisions(session: Session, scope: InspectionScope, source: Source = "inspections") -> dict[str, int]:
    """Inspections per decision (``pass`` / ``fail`` / ``review``)."""
    v = _view(session, source, scope)
    query = select(v.decision, v.count).where(*conditions(session, scope, v)).group_by(v.decision)
    return {str(decision): int(n) for decision, n in session.execute(query)}


def decision_score_cube(session: Session, scope: InspectionScope, grain: Grain, bins: int,
                        source: Source = "inspections") -> list[tuple[Any, str, int, int]]:
    """``(bucket start, decision, score bin, count)`` with ``bins`` equal score bins of [0, 1] made of
    whole fine bins (so the rollup answers exactly): the counts, the defect rate over time and the
    score distributions over time in one pass."""
    if FINE_SCORE_BINS % bins:
        raise ValueError(f"{bins} score bins do not divide {FINE_SCORE_BINS} fine bins")
    v = _view(session, source, scope, grain=grain)
    bucket = time_bucket(session, v.time, grain).label("bucket")
    fine = v.score_bin.label("fine")
    query = select(bucket, v.decision, fine, v.count).where(*conditions(session, scope, v))
    query = query.group_by(bucket, v.decision, fine).order_by(bucket)
    merged: dict[tuple[Any, str, int], int] = {}
    per_bin = FINE_SCORE_BINS // bins
    for when, decision, position, n in session.execute(query):
        key = (when, str(decision), min(max(int(position), 0), FINE_SCORE_BINS - 1) // per_bin)
        merged[key] = merged.get(key, 0) + int(n)
    return [(*key, n) for key, n in merged.items()]


def labels_of(session: Session, scope: InspectionScope, decision: str,
              source: Source = "inspections") -> dict[str, int]:
    """Inspections per model label among those with ``decision``."""
    v = _view(session, source, scope)
    query = select(v.label, v.count).where(*conditions(session, scope, v), v.decision == decision)
    return {str(label): int(n) for label, n in session.execute(query.group_by(v.label))}


def score_histogram(session: Session, scope: InspectionScope, source: Source = "inspections") -> list[int]:
    """Counts of the score in the ``FINE_SCORE_BINS`` bins of [0, 1] (out-of-range scores in the end bins)."""
    v = _view(session, source, scope)
    fine = v.score_bin.label("fine")
    query = select(fine, v.count).where(*conditions(session, scope, v)).group_by(fine)
    result = [0] * FINE_SCORE_BINS
    for position, n in session.execute(query):
        result[min(max(int(position), 0), FINE_SCORE_BINS - 1)] += int(n)
    return result


def latency_bins(session: Session, scope: InspectionScope, source: Source = "inspections") -> dict[int, int]:
    """Inspections per logarithmic latency bin (see ``latency_bin``)."""
    v = _view(session, source, scope, "latencies")
    index = v.latency_bin.label("bin")
    query = select(index, v.count).where(*conditions(session, scope, v)).group_by(index)
    return {int(position): int(n) for position, n in session.execute(query)}


def station_decisions(session: Session, scope: InspectionScope,
                      source: Source = "inspections") -> list[tuple[str, str, int]]:
    """Inspections per ``(station, decision)``."""
    v = _view(session, source, scope)
    query = select(v.station, v.decision, v.count).where(*conditions(session, scope, v)).group_by(v.station, v.decision)
    return [(str(station), str(decision), int(n)) for station, decision, n in session.execute(query)]


def _upsert(session: Session, table: Any, names: list[str], rows: Select[Any]) -> None:
    """``INSERT INTO table (names..., count) rows ON CONFLICT (names) DO UPDATE count = count + excluded.count``."""
    insert = sqlite_insert if _dialect(session) == "sqlite" else postgresql_insert
    statement = insert(table).from_select([*names, "count"], rows)
    session.execute(statement.on_conflict_do_update(
        index_elements=names, set_={"count": table.count + statement.excluded["count"]}))


def _keys(session: Session, tier: Tier) -> tuple[list[ColumnElement[Any]], list[str]]:
    """The key expressions every rollup of ``tier`` starts with, over the inspection table, and their names."""
    version = func.coalesce(Inspection.model_version_id, literal_column("0"))
    return ([period_start(session, Inspection.created_at, tier), Inspection.tool_id, Inspection.station, version,
             Inspection.decision], [tier, "tool_id", "station", "model_version_id", "decision"])


def roll_up(session: Session, where: ColumnElement[bool], tiers: Sequence[Tier] = TIERS) -> None:
    """Add the inspections matching ``where`` to the count and latency rollups of ``tiers`` (in the
    caller's transaction): one ``INSERT ... SELECT ... GROUP BY ... ON CONFLICT DO UPDATE`` per rollup, with
    the very expressions the inspection-table queries group by, so that both give the same bins. Concurrent
    writers are safe on PostgreSQL: the upsert of a key another open transaction has written waits for
    it, then adds to its count."""
    for tier in tiers:
        counts, latencies, _ = _ROLLUPS[tier]
        keys, names = _keys(session, tier)
        for table, measures, more in (
                (counts, (Inspection.label, fine_score_bin(session, Inspection.score)), ["label", "score_bin"]),
                (latencies, (latency_bin(session, Inspection.latency_ms),), ["latency_bin"])):
            grouped = [*keys, *measures]
            _upsert(session, table, [*names, *more], select(*grouped, func.count()).where(where).group_by(*grouped))


def roll_up_reviews(session: Session, where: ColumnElement[bool], sign: int = 1,
                    tiers: Sequence[Tier] = TIERS) -> None:
    """Add (``sign`` 1) or take back (-1) the reviews matching ``where`` in the review rollups of ``tiers``,
    at their inspection's hour / day (as ``roll_up``; in the caller's transaction)."""
    for tier in tiers:
        keys, names = _keys(session, tier)
        grouped = [*keys, Inspection.label, Review.verdict]
        rows = (select(*grouped, func.count() * _number(sign)).select_from(Review)
                .join(Inspection, Review.inspection_id == Inspection.id).where(where).group_by(*grouped))
        _upsert(session, _ROLLUPS[tier][2], [*names, "label", "verdict"], rows)


def review_outcomes(session: Session, scope: InspectionScope,
                    source: Source = "inspections") -> list[tuple[str, str, str, int]]:
    """Reviewed inspections per ``(decision, model's label, operator's verdict)``."""
    if source == "rollup":
        v = _view(session, source, scope, "reviews")
        query = (select(v.decision, v.label, v.verdict, v.count).where(*conditions(session, scope, v))
                 .group_by(v.decision, v.label, v.verdict).having(v.count != 0))  # undone reviews leave zeros
    else:
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


def first_inspection_time(session: Session, model_version_id: int) -> datetime | None:
    """When the model version made its first recorded inspection."""
    return session.scalar(select(func.min(Inspection.created_at)).where(
        Inspection.model_version_id == model_version_id))


def stations(session: Session, tool_id: int) -> list[str]:
    """The stations that inspected for the tool, alphabetically: a skip scan of the (tool, station)
    index (a recursive query asking for the next station name), so a few index probes per station
    however many inspections there are."""
    def after(previous: Any) -> ColumnElement[Any]:
        query = select(func.min(Inspection.station)).where(Inspection.tool_id == tool_id)
        return (query if previous is None else query.where(Inspection.station > previous)).scalar_subquery()

    found = select(after(None).label("station")).cte("found", recursive=True)
    found = found.union_all(select(after(found.c.station)).where(found.c.station.is_not(None)))
    return list(session.scalars(select(found.c.station).where(found.c.station.is_not(None)).order_by(found.c.station)))


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
