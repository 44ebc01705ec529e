"""What the Line page and ``station status`` show: stations, their status, last events, backlog."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select

from core.studio import Studio
from storage.line_tables import LineStation, OutboxEvent
from storage.tables import utc_now

STALE_AFTER_S = 5.0


def station_rows(studio: Studio) -> list[dict[str, Any]]:
    """Every known station with its last status, heartbeat and whether it is running now."""
    now = utc_now()
    with studio.transaction() as session:
        rows = list(session.scalars(select(LineStation).order_by(LineStation.name)))
        return [
            {
                "name": r.name,
                "seq": r.seq,
                "active_recipe_id": r.active_recipe_id,
                "status": dict(r.status or {}),
                "heartbeat_at": r.heartbeat_at,
                "running": bool(
                    r.heartbeat_at
                    and now - r.heartbeat_at < timedelta(seconds=STALE_AFTER_S)
                    and not (r.status or {}).get("stopped_at")
                ),
            }
            for r in rows
        ]


def recent_events(studio: Studio, station: str, limit: int = 20) -> list[dict[str, Any]]:
    """The station's newest events, newest first."""
    with studio.transaction() as session:
        rows = session.scalars(
            select(OutboxEvent).where(OutboxEvent.station == station).order_by(OutboxEvent.seq.desc()).limit(limit)
        )
        return [
            {
                "seq": r.seq,
                "time": r.created_at,
                "tool": r.payload.get("tool"),
                "recipe": r.recipe,
                "decision": r.payload.get("decision"),
                "label": r.payload.get("label"),
                "score": r.payload.get("score"),
                "inspection_id": r.inspection_id,
                "event_id": r.event_id,
            }
            for r in rows
        ]
