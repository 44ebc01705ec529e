"""Station heartbeats: each station writes what it runs and how it is; the Fleet page reads them.

A station is *silent* when its last heartbeat is older than :data:`SILENT_PERIODS` of its own
heartbeat periods (it stopped, its PC is off, or it cannot reach the database).
"""

from __future__ import annotations

import socket
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import select

from core.studio import Studio
from storage.fleet_tables import FleetStation
from storage.tables import utc_now

SILENT_PERIODS = 3
STATES = ("ok", "degraded")


@cache
def software_version() -> str:
    """The studio's version, as installed (pyproject's when run from the source tree)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("inspection-studio")
    except PackageNotFoundError:
        import tomllib
        from pathlib import Path

        pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
        return str(tomllib.loads(pyproject.read_text())["project"]["version"]) if pyproject.exists() else "?"


@dataclass
class Beat:
    """One heartbeat: what the station runs and how it is."""

    name: str
    recipe: str | None = None
    models: dict[str, dict[str, int]] = field(default_factory=dict)  # {tool: {method: version_id}}
    fps: float = 0.0
    backlog: int = 0
    state: str = "ok"
    reason: str | None = None
    heartbeat_s: float = 1.0
    host: str = field(default_factory=socket.gethostname)
    software: str = field(default_factory=software_version)


SLOW_STORE_BACKLOG = 200  # objects waiting for upload without an error: the store lags behind


def store_problem(studio: Studio) -> str | None:
    """What a heartbeat says about the object store: None while images reach it (a few in flight are
    normal: they are written behind), else how many wait in the local spool (the station keeps
    inspecting; the spool uploads them when the store answers again)."""
    objects = studio.images.objects
    waiting = objects.pending()
    error = getattr(objects, "last_error", None)
    if not waiting or (error is None and waiting < SLOW_STORE_BACKLOG):
        return None
    why = error or "the object store is slow"  # an unavailable store's error says so (and why)
    return f"{why}; {waiting} images spooled locally, still inspecting; they upload when it answers"


def beat(studio: Studio, heartbeat: Beat) -> None:
    """Register the station on its first beat, then update it (one short transaction)."""
    if heartbeat.state not in STATES:
        raise ValueError(f"state must be one of {STATES}")
    values = asdict(heartbeat)
    values["reason"] = (heartbeat.reason or None) and heartbeat.reason[:1000]
    with studio.transaction() as session:
        row = session.scalar(select(FleetStation).where(FleetStation.name == heartbeat.name))
        if row is None:
            row = FleetStation(name=heartbeat.name, registered_at=utc_now())
            session.add(row)
        for key, value in values.items():
            setattr(row, key, value)
        row.last_seen = utc_now()


def fleet(studio: Studio, now: datetime | None = None) -> list[dict[str, Any]]:
    """Every station by name, with ``silent`` (no beat for SILENT_PERIODS periods) and ``age_s``."""
    now = now or utc_now()
    with studio.transaction() as session:
        rows = session.scalars(select(FleetStation).order_by(FleetStation.name)).all()
    out = []
    for row in rows:
        age = (now - row.last_seen).total_seconds()
        silent = now - row.last_seen > timedelta(seconds=SILENT_PERIODS * max(row.heartbeat_s, 0.1))
        out.append({"name": row.name, "host": row.host, "software": row.software, "recipe": row.recipe,
                    "models": row.models, "fps": row.fps, "backlog": row.backlog, "state": row.state,
                    "reason": row.reason, "heartbeat_s": row.heartbeat_s, "last_seen": row.last_seen,
                    "age_s": round(age, 1), "silent": silent})
    return out
