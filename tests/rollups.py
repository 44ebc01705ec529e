"""Test and benchmark helper: the contents of the analytics rollups, and what a full recount from the
inspection table gives (the migration's backfill), to compare the incremental rollup with."""

from __future__ import annotations

from sqlalchemy import delete, select, true
from sqlalchemy.orm import Session

from core.studio import Studio
from storage.analytics_queries import roll_up, roll_up_reviews
from storage.rollup_tables import (
    DailyInspectionRollup,
    DailyLatencyRollup,
    DailyReviewRollup,
    InspectionRollup,
    LatencyRollup,
    ReviewRollup,
)

ROLLUPS = (InspectionRollup, LatencyRollup, DailyInspectionRollup, DailyLatencyRollup, ReviewRollup,
           DailyReviewRollup)

Contents = dict[str, set[tuple]]


def rollup_contents(session: Session) -> Contents:
    """Every row of every rollup but those counting zero (reviews taken back), per table."""
    return {table.__tablename__: {tuple(row) for row in session.execute(
        select(*table.__table__.columns).where(table.count != 0))} for table in ROLLUPS}


def recounted(studio: Studio) -> Contents:
    """The rollups as a recount of every inspection would fill them (computed and rolled back)."""
    with studio.sessions() as session:
        for table in ROLLUPS:
            session.execute(delete(table))
        roll_up(session, true())
        roll_up_reviews(session, true())
        contents = rollup_contents(session)
        session.rollback()
    return contents


def current(studio: Studio) -> Contents:
    with studio.transaction() as session:
        return rollup_contents(session)
