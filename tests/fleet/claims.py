"""Tablets claiming review cards from one queue in separate processes (the test and bench/fleet.py)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from core.config import Settings
from core.studio import open_studio
from storage import repository as repo
from storage import review_queue as queue_repo
from storage.review_queue import QueueScope
from storage.tables import Inspection, utc_now


def fill_queue(settings: Settings, tool: str, n: int) -> None:
    """``n`` inspections of ``tool`` waiting for review (one bulk insert)."""
    studio = open_studio(settings)
    t0 = datetime(2026, 1, 1)
    with studio.transaction() as session:
        tool_id = repo.get_tool(session, tool).id
        session.execute(Inspection.__table__.insert(), [
            {"tool_id": tool_id, "created_at": t0 + timedelta(seconds=i), "decision": "review", "label": "good",
             "score": 0.5, "scores": {}, "latency_ms": 1.0, "opinions": {}, "degraded": False,
             "needs_review": True} for i in range(n)])
    studio.engine.dispose()


def claim_all(settings: Settings, tablet: str, start: Any) -> list[int]:
    """Claim cards one by one until the queue has none free; the claimed inspection ids."""
    studio = open_studio(settings)
    claimed: list[int] = []
    start.wait()
    while True:
        now = utc_now()
        with studio.transaction() as session:
            got = queue_repo.claim_next(session, tablet, QueueScope(), now, now + timedelta(hours=1))
        if got is None:
            break
        claimed.append(got)
    studio.engine.dispose()
    return claimed
