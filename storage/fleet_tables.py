"""Tables of the fleet (issue 21): each station's heartbeat, and a rollout counter per tool.

Imported at the end of :mod:`storage.tables`, so they share its ``Base`` and Alembic sees them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Float, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from storage.tables import Base, utc_now


class FleetStation(Base):
    """A station as the fleet sees it: what it runs and how it is, written by its own heartbeat."""

    __tablename__ = "fleet_station"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    host: Mapped[str] = mapped_column(String(255), default="")
    software: Mapped[str] = mapped_column(String(100), default="")
    recipe: Mapped[str | None] = mapped_column(String(100), default=None)
    models: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # {tool: {method: version_id}}
    fps: Mapped[float] = mapped_column(Float, default=0.0)
    backlog: Mapped[int] = mapped_column(Integer, default=0)  # outbox events not yet delivered
    state: Mapped[str] = mapped_column(String(16), default="ok")  # ok | degraded
    reason: Mapped[str | None] = mapped_column(String(1000), default=None)
    heartbeat_s: Mapped[float] = mapped_column(Float, default=1.0)
    registered_at: Mapped[datetime] = mapped_column(default=utc_now)
    last_seen: Mapped[datetime] = mapped_column(default=utc_now)


class RolloutSignal(Base):
    """One row per tool: ``generation`` goes up when its active models change (promote, rollback);
    stations that cannot LISTEN poll it."""

    __tablename__ = "rollout_signal"

    tool: Mapped[str] = mapped_column(String(100), primary_key=True)
    generation: Mapped[int] = mapped_column(Integer, default=0)
    changed_at: Mapped[datetime] = mapped_column(default=utc_now)
