"""core.analytics.daily_stats on both backends, against hand-computed numbers."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pandas as pd
import pytest

from core.analytics import DAILY_COLUMNS, daily_stats, default_range
from core.audit import SYSTEM
from core.errors import NotFoundError
from core.studio import Studio
from core.tools import create_tool
from storage import repository as repo
from storage.tables import utc_now

TOOL = "cells"


def inspect_at(studio: Studio, when: datetime, decision: str, tool: str = TOOL) -> None:
    with studio.transaction() as session:
        repo.add_inspection(session, tool_id=repo.get_tool(session, tool).id, created_at=when, decision=decision,
                            label="good" if decision == "pass" else "defective", score=0.5, scores={},
                            latency_ms=5.0, needs_review=decision == "review")


@pytest.fixture
def cells(any_studio: Studio) -> Studio:
    create_tool(any_studio, TOOL, "good,defective", actor=SYSTEM)
    create_tool(any_studio, "other", "good,defective", actor=SYSTEM)
    return any_studio


def test_daily_stats_exact_counts_and_rates(cells: Studio) -> None:
    d1, d2, d3, d4 = (datetime(2024, 2, 27) + timedelta(days=i) for i in range(4))  # across 29 February
    # 27 Feb: 4 inspections, 1 fail, 1 review            -> rate 0.25
    for offset, decision in [(1, "pass"), (2, "pass"), (3, "fail"), (23.99, "review")]:
        inspect_at(cells, d1 + timedelta(hours=offset), decision)
    inspect_at(cells, d1 + timedelta(hours=23, minutes=59, seconds=59), "pass")  # still 27 Feb: now 5 -> 0.2
    # 28 Feb: 2 inspections, 2 fails                     -> rate 1.0
    inspect_at(cells, d2, "fail")  # exactly midnight belongs to the new day
    inspect_at(cells, d2 + timedelta(hours=12), "fail")
    # 29 Feb: nothing (the day is absent)
    # 1 Mar: 3 inspections, 0 fails, 2 reviews           -> rate 0.0
    for hours in (0.5, 9, 23):
        inspect_at(cells, d4 + timedelta(hours=hours), "review" if hours < 20 else "pass")
    # noise: another tool, and days outside the range
    inspect_at(cells, d2 + timedelta(hours=1), "fail", tool="other")
    inspect_at(cells, d1 - timedelta(seconds=1), "fail")
    inspect_at(cells, d4 + timedelta(days=1), "fail")

    frame = daily_stats(cells, TOOL, d1.date(), d4.date())

    assert list(frame.columns) == DAILY_COLUMNS
    assert frame["day"].tolist() == [pd.Timestamp("2024-02-27"), pd.Timestamp("2024-02-28"),
                                     pd.Timestamp("2024-03-01")]
    assert frame["inspections"].tolist() == [5, 2, 3]
    assert frame["failed"].tolist() == [1, 2, 0]
    assert frame["to_review"].tolist() == [1, 0, 2]
    assert frame["defect_rate"].tolist() == pytest.approx([0.2, 1.0, 0.0])
    assert frame["defect_rate"].dtype == float

    # a single day, inclusive of both ends
    one = daily_stats(cells, TOOL, d2.date(), d2.date())
    assert one[["inspections", "failed", "to_review"]].values.tolist() == [[2, 2, 0]]
    other = daily_stats(cells, "other", d1.date(), d4.date())
    assert other[["inspections", "failed"]].values.tolist() == [[1, 1]]
    assert other["defect_rate"].tolist() == [1.0]


def test_daily_stats_without_inspections_is_empty(cells: Studio) -> None:
    frame = daily_stats(cells, TOOL, date(2020, 1, 1), date(2020, 1, 31))
    assert frame.empty
    assert list(frame.columns) == DAILY_COLUMNS


def test_daily_stats_of_unknown_tool(cells: Studio) -> None:
    with pytest.raises(NotFoundError, match="no tool named 'ghost'"):
        daily_stats(cells, "ghost", date(2024, 1, 1), date(2024, 1, 2))


def test_default_range_ends_today() -> None:
    start, end = default_range(14)
    assert end == utc_now().date()
    assert (end - start).days == 13
    assert default_range(1) == (end, end)
