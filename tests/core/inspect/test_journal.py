"""The station's database spool: a durable, ordered journal on disk, replayed exactly once (a replay
after a crash between the commit and the entry's removal finds the key written and skips it)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from sqlalchemy import select

from core.audit import SYSTEM
from core.inspect.journal import Journal
from core.inspect.recorder import PendingInspection
from core.line.db_spool import DatabaseSpool
from core.studio import Studio
from core.tools import create_tool
from storage.tables import Inspection, utc_now


def pending(tool_id: int, n: int) -> PendingInspection:
    return PendingInspection(
        tool="cell", tool_id=tool_id, station="s1", recipe=None, created_at=utc_now(), decision="pass",
        label="good", score=n / 100, scores={"good": 1.0}, opinions={}, model_versions={}, model_version_id=None,
        good_only_score=None, degraded=False, latency_ms=float(n), needs_review=False, image_key=None,
        record_key=str(uuid.uuid4()))


def test_the_journal_keeps_complete_entries_in_order_across_restarts(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "spool")
    written = [pending(1, n) for n in range(5)]
    for item in written[:3]:
        journal.append(item)
    (tmp_path / "spool" / ".tmp-killed-midway.part").write_bytes(b'{"half')  # a writer killed mid-write
    reopened = Journal(tmp_path / "spool")  # the next process
    assert len(reopened) == 3
    for item in written[3:]:
        reopened.append(item)
    assert [p for _, p in reopened.entries()] == written
    path, _ = reopened.entries()[0]
    reopened.remove(path)
    assert len(reopened) == 4 and [p for _, p in Journal(tmp_path / "spool").entries()] == written[1:]
    with pytest.raises(ValueError, match="record_key"):
        reopened.append(PendingInspection(**{**written[0].__dict__, "record_key": None}))


def test_a_replay_writes_each_spooled_inspection_once(any_studio: Studio, tmp_path: Path) -> None:
    tool_id = create_tool(any_studio, "cell", "good,crack", actor=SYSTEM).id
    spool = DatabaseSpool(any_studio, tmp_path / "spool")
    items = [pending(tool_id, n) for n in range(4)]
    for item in items:
        spool.journal.append(item)
    assert spool.replay() == 0 and spool.written == 4
    spool.journal.append(items[2])  # the process died after committing it, before removing its entry
    assert spool.replay() == 0 and spool.pending() == 0
    with any_studio.transaction() as session:
        rows = session.execute(select(Inspection.record_key, Inspection.latency_ms).order_by(Inspection.id)).all()
    assert rows == [(i.record_key, i.latency_ms) for i in items]  # in order, each once
    assert spool.record([pending(tool_id, 9)])[0] is not None  # nothing waits: written directly
    assert spool.problem() is None
