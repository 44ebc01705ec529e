"""The inspection writer: off-thread writes, buffered while the database is locked, spooled on close."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import numpy as np
import pytest

import storage.db
from core.audit import SYSTEM
from core.config import Settings
from core.inspect.decision import Verdict
from core.inspect.engine import Inspection as Judged
from core.inspect.recorder import RecordContext
from core.live.writer import SPOOL_FOLDER, InspectionWriter
from core.studio import Studio, open_studio
from core.tool_settings import ToolSettings
from core.tools import create_tool
from storage.tables import Inspection, utc_now


@pytest.fixture
def studio(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Studio:
    monkeypatch.setattr(storage.db, "SQLITE_BUSY_TIMEOUT_MS", 200)
    data_dir = tmp_path / "data"
    studio = open_studio(Settings(data_dir, f"sqlite:///{data_dir / 'studio.db'}"))
    create_tool(studio, "cell", "good,crack", actor=SYSTEM)
    yield studio
    studio.engine.dispose()


def item(studio: Studio, n: int, decision: str = "fail") -> tuple[Judged, RecordContext]:
    with studio.transaction() as session:
        from storage import repository as repo
        tool_id = repo.get_tool(session, "cell").id
    verdict = Verdict(decision, "crack" if decision != "pass" else "good", n / 100)
    judged = Judged("cell", tool_id, verdict, {}, {}, False, {"good": 1 - n / 100, "crack": n / 100}, (0, 0, 40, 40),
                    np.full((40, 40, 3), n, np.uint8), settings=ToolSettings(keep_pass_share=0.0))
    return judged, RecordContext("t", created_at=utc_now(), latency_ms=12.0)


def rows(data_dir: Path) -> list[tuple]:
    with sqlite3.connect(data_dir / "studio.db") as connection:
        return connection.execute(
            "SELECT score, decision, image_key IS NOT NULL FROM inspection ORDER BY id").fetchall()


def test_writes_in_order_off_the_calling_thread(studio: Studio) -> None:
    writer = InspectionWriter(studio)
    started = time.perf_counter()
    for n in range(20):
        writer.submit(*item(studio, n, "fail" if n % 2 else "pass"))
    assert time.perf_counter() - started < 1.0
    assert writer.flush(10)
    assert writer.status().written == 20 and writer.status().error is None
    assert [r[0] for r in rows(studio.settings.data_dir)] == [n / 100 for n in range(20)]
    assert [r[2] for r in rows(studio.settings.data_dir)] == [bool(n % 2) for n in range(20)]
    assert writer.close() == 0


def test_locked_database_buffers_then_writes_everything(studio: Studio) -> None:
    writer = InspectionWriter(studio, retry_seconds=0.2)
    blocker = sqlite3.connect(studio.settings.data_dir / "studio.db", isolation_level=None)
    try:
        blocker.execute("BEGIN EXCLUSIVE")
        for n in range(5):
            writer.submit(*item(studio, n))
        assert not writer.flush(1.5)
        status = writer.status()
        assert status.waiting == 5 and status.written == 0 and "locked" in status.error
        blocker.execute("ROLLBACK")
        assert writer.flush(10)
    finally:
        blocker.close()
    assert writer.status().error is None
    assert [r[0] for r in rows(studio.settings.data_dir)] == [n / 100 for n in range(5)]
    assert writer.close() == 0


def test_close_while_locked_spools_and_the_next_writer_replays(studio: Studio) -> None:
    data_dir = studio.settings.data_dir
    writer = InspectionWriter(studio, retry_seconds=0.2)
    blocker = sqlite3.connect(data_dir / "studio.db", isolation_level=None)
    try:
        blocker.execute("BEGIN EXCLUSIVE")
        for n in range(3):
            writer.submit(*item(studio, n + 1))
        assert writer.close(timeout=1.0) == 3  # nothing could be written: all three kept on disk
        with pytest.raises(RuntimeError, match="closed"):
            writer.submit(*item(studio, 9))
        spooled = list((data_dir / SPOOL_FOLDER).glob("*.jsonl"))
        assert len(spooled) == 1 and len(spooled[0].read_text().splitlines()) == 3
        blocker.execute("ROLLBACK")
    finally:
        blocker.close()
    assert rows(data_dir) == []

    replay = InspectionWriter(studio)  # e.g. the studio restarted
    assert replay.flush(10)
    assert rows(data_dir) == [(0.01, "fail", 1), (0.02, "fail", 1), (0.03, "fail", 1)]
    assert list((data_dir / SPOOL_FOLDER).glob("*.jsonl")) == []
    with studio.transaction() as session:
        kept = [r.image_key for r in session.query(Inspection).order_by(Inspection.id)]
    assert all(studio.images.exists(key) for key in kept)  # the frames were stored before spooling
    replay.close()
