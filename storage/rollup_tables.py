"""Rollup tables of the analytics (issue 21): inspection counts per hour, kept in step with the
inspection table in each inspection's own transaction (see ``storage.analytics_queries.roll_up``).

Every column but ``count`` is part of the primary key; ``model_version_id`` is 0 for "no version"
(a key column cannot be NULL), and has no foreign key: a rollup row outlives nothing it counts.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, ForeignKey, Integer, SmallInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from storage.tables import Base


class InspectionRollup(Base):
    """Inspections per (tool, hour, station, model version, decision, label, fine score bin)."""

    __tablename__ = "inspection_rollup"

    tool_id: Mapped[int] = mapped_column(ForeignKey("tool.id", ondelete="CASCADE"), primary_key=True)
    hour: Mapped[datetime] = mapped_column(DateTime, primary_key=True)
    station: Mapped[str] = mapped_column(String(100), primary_key=True)
    model_version_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    decision: Mapped[str] = mapped_column(String(20), primary_key=True)
    label: Mapped[str] = mapped_column(String(100), primary_key=True)
    score_bin: Mapped[int] = mapped_column(SmallInteger, primary_key=True)  # floor(score / 0.01), 0..99
    count: Mapped[int] = mapped_column(BigInteger)


class LatencyRollup(Base):
    """Inspections per (tool, hour, station, model version, decision, logarithmic latency bin)."""

    __tablename__ = "inspection_latency_rollup"

    tool_id: Mapped[int] = mapped_column(ForeignKey("tool.id", ondelete="CASCADE"), primary_key=True)
    hour: Mapped[datetime] = mapped_column(DateTime, primary_key=True)
    station: Mapped[str] = mapped_column(String(100), primary_key=True)
    model_version_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    decision: Mapped[str] = mapped_column(String(20), primary_key=True)
    latency_bin: Mapped[int] = mapped_column(SmallInteger, primary_key=True)  # floor(ln(1 + ms) * 20)
    count: Mapped[int] = mapped_column(BigInteger)
