"""Idle expiry of a signed-in session (the pages sign out after IDLE_MINUTES without activity)."""

from __future__ import annotations

import os
from datetime import datetime, timedelta

IDLE_MINUTES = 15


def idle_minutes() -> int:
    """STUDIO_IDLE_MINUTES, default 15."""
    try:
        return max(1, int(os.environ.get("STUDIO_IDLE_MINUTES", IDLE_MINUTES)))
    except ValueError:
        return IDLE_MINUTES


def expired(last_seen: datetime, now: datetime, idle_minutes: int = IDLE_MINUTES) -> bool:
    return now - last_seen > timedelta(minutes=idle_minutes)
