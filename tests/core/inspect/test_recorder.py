"""The recorder: one row per inspection with the station, what is kept, and the hooks other parts
subscribe to (in the inspection's transaction, and after its commit)."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import func, select

from core.audit import SYSTEM, Actor, log
from core.inspect.decision import Verdict
from core.inspect.recorder import PendingInspection, RecordedInspection
from core.studio import Studio
from core.tools import create_tool
from storage.tables import AuditEntry, Inspection
from tests.inspections import record


@pytest.fixture
def cell(any_studio: Studio) -> Studio:
    create_tool(any_studio, "cell", "good,crack", actor=SYSTEM)
    return any_studio


def count(studio: Studio) -> int:
    with studio.transaction() as session:
        return session.scalar(select(func.count()).select_from(Inspection))


def test_hooks_run_in_the_transaction_and_after_the_commit(cell: Studio) -> None:
    seen: list[tuple[str, int]] = []

    def in_transaction(session, recorded: RecordedInspection) -> None:
        assert session.get(Inspection, recorded.inspection_id) is not None  # the row, not yet committed
        log(session, Actor("hook"), "outbox", f"inspection {recorded.inspection_id}", None)
        seen.append(("in", recorded.inspection_id))

    def after_commit(recorded: RecordedInspection) -> None:
        seen.append(("after", recorded.inspection_id))
        assert recorded.station == "line-7" and recorded.decision == "fail" and recorded.label == "crack"

    cell.recorder.subscribe(in_transaction=in_transaction, after_commit=after_commit)
    inspection_id = record(cell, "cell", Verdict("fail", "crack", 0.9), station="line-7")
    assert seen == [("in", inspection_id), ("after", inspection_id)]
    with cell.transaction() as session:
        assert session.scalar(select(func.count()).select_from(AuditEntry)) == 1


def test_a_failing_in_transaction_hook_takes_the_inspection_with_it(cell: Studio) -> None:
    def broken(session, recorded) -> None:
        raise RuntimeError("outbox full")

    cell.recorder.subscribe(in_transaction=broken)
    with pytest.raises(RuntimeError, match="outbox full"):
        record(cell, "cell", Verdict("fail", "crack", 0.9))
    assert count(cell) == 0  # all or nothing


def test_a_failing_after_commit_hook_is_logged_and_keeps_the_inspection(cell: Studio, caplog) -> None:
    def broken(recorded) -> None:
        raise RuntimeError("broker gone")

    cell.recorder.subscribe(after_commit=broken)
    with caplog.at_level(logging.ERROR):
        record(cell, "cell", Verdict("pass", "good", 0.1))
    assert count(cell) == 1 and "after-commit hook failed" in caplog.text


def test_pending_inspections_survive_a_json_round_trip(cell: Studio) -> None:
    from datetime import datetime

    pending = PendingInspection("cell", 1, "s", "recipe-2", datetime(2026, 1, 2, 3, 4, 5), "fail", "crack", 0.9,
                                {"good": 0.1, "crack": 0.9}, {"classifier": {"version": 3}}, {"classifier": 3}, 3,
                                None, False, 12.5, False, "ab/cd.png")
    assert PendingInspection.from_json(pending.to_json()) == pending


def test_the_studio_station_is_recorded_by_default(cell: Studio) -> None:
    record(cell, "cell", Verdict("pass", "good", 0.1), station=None)
    with cell.transaction() as session:
        assert session.scalars(select(Inspection.station)).one() == cell.settings.station
