"""Inspections per UTC day of a tool, aggregated in the database."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

import pandas as pd

from core.studio import Studio
from core.tools import require_tool
from storage import repository as repo
from storage.tables import utc_now

DAILY_COLUMNS = ["day", "inspections", "failed", "to_review", "defect_rate"]


def daily_stats(studio: Studio, tool_name: str, start: date, end: date) -> pd.DataFrame:
    """Per UTC day from ``start`` to ``end`` inclusive: inspections, failed, to review and the
    defect rate (failed / inspections). Days without inspections are absent."""
    begin = datetime.combine(start, time.min)
    stop = datetime.combine(end + timedelta(days=1), time.min)
    with studio.transaction() as session:
        tool = require_tool(session, tool_name)
        rows = repo.daily_inspection_stats(session, tool.id, begin, stop)
    frame = pd.DataFrame(rows, columns=DAILY_COLUMNS[:4])
    frame["day"] = pd.to_datetime(frame["day"])
    frame["defect_rate"] = (frame["failed"] / frame["inspections"]).astype(float)
    return frame


def default_range(days: int = 14) -> tuple[date, date]:
    """The last ``days`` days up to today (UTC)."""
    today = utc_now().date()
    return today - timedelta(days=days - 1), today
