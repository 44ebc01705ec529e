"""Rollup tables of the analytics (issue 21): inspection and review counts per hour and per UTC day,
kept in step with the inspection and review tables in the writing transaction (``storage.analytics_queries``).
Reviews are counted at their inspection's hour / day.

Two tiers of the same counts: the hourly tables answer any whole-hour period (shifts, hourly buckets);
the daily ones answer whole UTC days without a shift 24 times fewer rows (a month of a plant is a few
tens of thousands of rows whatever the number of inspections). Every column but ``count`` is part of the
primary key; ``model_version_id`` is 0 for "no version" (a key column cannot be NULL), and has no foreign
key: a rollup row outlives nothing it counts.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, ForeignKey, Integer, SmallInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from storage.tables import Base


class _Key:
    """The key columns every rollup starts with (the period column sits after ``tool_id``)."""

    tool_id: Mapped[int] = mapped_column(ForeignKey("tool.id", ondelete="CASCADE"), primary_key=True, sort_order=-3)
    station: Mapped[str] = mapped_column(String(100), primary_key=True, sort_order=-1)
    model_version_id: Mapped[int] = mapped_column(Integer, primary_key=True, sort_order=-1)
    decision: Mapped[str] = mapped_column(String(20), primary_key=True, sort_order=-1)


class _Scores:
    label: Mapped[str] = mapped_column(String(100), primary_key=True)
    score_bin: Mapped[int] = mapped_column(SmallInteger, primary_key=True)  # floor(score / 0.01), 0..99
    count: Mapped[int] = mapped_column(BigInteger)


class _Latencies:
    latency_bin: Mapped[int] = mapped_column(SmallInteger, primary_key=True)  # floor(ln(1 + ms) * 20)
    count: Mapped[int] = mapped_column(BigInteger)


class InspectionRollup(_Key, _Scores, Base):
    """Inspections per (tool, hour, station, model version, decision, label, fine score bin)."""

    __tablename__ = "inspection_rollup"

    hour: Mapped[datetime] = mapped_column(DateTime, primary_key=True, sort_order=-2)


class LatencyRollup(_Key, _Latencies, Base):
    """Inspections per (tool, hour, station, model version, decision, logarithmic latency bin)."""

    __tablename__ = "inspection_latency_rollup"

    hour: Mapped[datetime] = mapped_column(DateTime, primary_key=True, sort_order=-2)


class DailyInspectionRollup(_Key, _Scores, Base):
    """Inspections per (tool, UTC day, station, model version, decision, label, fine score bin)."""

    __tablename__ = "inspection_daily_rollup"

    day: Mapped[datetime] = mapped_column(DateTime, primary_key=True, sort_order=-2)  # midnight UTC


class DailyLatencyRollup(_Key, _Latencies, Base):
    """Inspections per (tool, UTC day, station, model version, decision, logarithmic latency bin)."""

    __tablename__ = "inspection_daily_latency_rollup"

    day: Mapped[datetime] = mapped_column(DateTime, primary_key=True, sort_order=-2)  # midnight UTC


class _Reviews:
    label: Mapped[str] = mapped_column(String(100), primary_key=True)  # the model's label
    verdict: Mapped[str] = mapped_column(String(100), primary_key=True)  # the operator's
    count: Mapped[int] = mapped_column(BigInteger)


class ReviewRollup(_Key, _Reviews, Base):
    """Reviews per (tool, hour of the inspection, station, model version, decision, label, verdict)."""

    __tablename__ = "review_rollup"

    hour: Mapped[datetime] = mapped_column(DateTime, primary_key=True, sort_order=-2)


class DailyReviewRollup(_Key, _Reviews, Base):
    """Reviews per (tool, UTC day of the inspection, station, model version, decision, label, verdict)."""

    __tablename__ = "review_daily_rollup"

    day: Mapped[datetime] = mapped_column(DateTime, primary_key=True, sort_order=-2)  # midnight UTC
