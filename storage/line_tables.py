"""Tables of the production line (issue 17): stations, recipes, outputs and the durable outbox.

Imported at the end of :mod:`storage.tables`, so they share its ``Base`` and Alembic sees them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from storage.tables import Base, utc_now

OUTPUT_KINDS = ("mqtt", "webhook")


class LineStation(Base):
    """A headless station: its event sequence counter and active recipe."""

    __tablename__ = "line_station"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    seq: Mapped[int] = mapped_column(Integer, default=0)  # last event sequence number
    active_recipe_id: Mapped[int | None] = mapped_column(
        ForeignKey("recipe.id", use_alter=True, ondelete="SET NULL"), default=None
    )
    status: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # written by the running service
    heartbeat_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)


class Recipe(Base):
    """One product on a station: a named set of tools (with ROI / threshold / policy overrides)
    and the number a PLC writes to select it."""

    __tablename__ = "recipe"
    __table_args__ = (
        UniqueConstraint("station", "name", name="recipe_station_name"),
        UniqueConstraint("station", "number", name="recipe_station_number"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    station: Mapped[str] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(String(100))
    number: Mapped[int] = mapped_column(Integer)
    tools: Mapped[list[Any]] = mapped_column(JSON, default=list)  # [{"tool", "roi"?, "threshold"?, "policy"?}]
    created_at: Mapped[datetime] = mapped_column(default=utc_now)


class Output(Base):
    """Where a station's events go: an MQTT broker or a webhook. ``secret`` is the broker password
    or the webhook's HMAC key, never shown back in full."""

    __tablename__ = "output"
    __table_args__ = (UniqueConstraint("station", "name", name="output_station_name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    station: Mapped[str] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(16))
    url: Mapped[str] = mapped_column(String(500))  # mqtt://host:port/prefix or http(s)://...
    username: Mapped[str | None] = mapped_column(String(100), default=None)
    secret: Mapped[str | None] = mapped_column(String(500), default=None)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)


class OutboxEvent(Base):
    """One versioned event per recorded inspection of a station, written in the inspection's own
    transaction. ``event_id`` (a UUID) lets receivers drop duplicates."""

    __tablename__ = "outbox_event"
    __table_args__ = (
        UniqueConstraint("station", "seq", name="outbox_event_station_seq"),
        Index("ix_outbox_event_station_time", "station", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[str] = mapped_column(String(36), unique=True)
    station: Mapped[str] = mapped_column(String(100))
    seq: Mapped[int] = mapped_column(Integer)
    recipe: Mapped[str | None] = mapped_column(String(100), default=None)
    inspection_id: Mapped[int | None] = mapped_column(ForeignKey("inspection.id", ondelete="SET NULL"), default=None)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)


class OutboxDelivery(Base):
    """The delivery of one event to one output: pending until ``delivered_at`` is set."""

    __tablename__ = "outbox_delivery"
    __table_args__ = (
        UniqueConstraint("event_pk", "output_id", name="outbox_delivery_event_output"),
        Index("ix_outbox_delivery_pending", "output_id", "delivered_at", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    event_pk: Mapped[int] = mapped_column(ForeignKey("outbox_event.id", ondelete="CASCADE"))
    output_id: Mapped[int] = mapped_column(ForeignKey("output.id", ondelete="CASCADE"))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utc_now)
    delivered_at: Mapped[datetime | None] = mapped_column(default=None)
    last_error: Mapped[str | None] = mapped_column(String(500), default=None)
