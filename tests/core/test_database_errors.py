"""A database that refuses writes (read-only, locked, unreachable) gives a DatabaseUnavailableError
whose message says why, and leaves the data as it was.

Tests run as root, where file permissions do not stop writes; SQLite's own read-only mode
(``?mode=ro&uri=true``) and a real ``BEGIN EXCLUSIVE`` from another connection are used instead.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import storage.db
from core.audit import SYSTEM
from core.config import Settings
from core.errors import DatabaseUnavailableError
from core.samples import Candidate, add_images
from core.studio import Studio, open_studio
from core.tool_settings import change_settings
from core.tools import create_tool, list_tools


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A data folder holding a migrated SQLite database with one tool."""
    folder = tmp_path / "data"
    studio = open_studio(Settings(folder, f"sqlite:///{folder / 'studio.db'}"))
    create_tool(studio, "existing", "good,crack", actor=SYSTEM)
    studio.engine.dispose()
    return folder


@pytest.fixture
def writable(data_dir: Path) -> Iterator[Studio]:
    studio = open_studio(Settings(data_dir, f"sqlite:///{data_dir / 'studio.db'}"))
    yield studio
    studio.engine.dispose()


def tool_names(data_dir: Path) -> list[str]:
    with sqlite3.connect(data_dir / "studio.db") as connection:
        return [row[0] for row in connection.execute("SELECT name FROM tool ORDER BY name")]


def test_read_only_database(data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # a URI filename must not create folders relative to the working dir
    url = f"sqlite:///file:{data_dir / 'studio.db'}?mode=ro&uri=true"
    studio = open_studio(Settings(data_dir, url))
    try:
        assert [t.name for t in list_tools(studio)] == ["existing"]  # reading still works
        with pytest.raises(DatabaseUnavailableError, match="read-only") as caught:
            create_tool(studio, "newcomer", "good,dent", actor=SYSTEM)
        assert "nothing was changed" in str(caught.value)
        with pytest.raises(DatabaseUnavailableError, match="read-only"):
            change_settings(studio, "existing", SYSTEM, {"threshold.classifier": 0.9})
    finally:
        studio.engine.dispose()
    assert tool_names(data_dir) == ["existing"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]  # no stray 'file:' folder


def test_locked_database(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(storage.db, "SQLITE_BUSY_TIMEOUT_MS", 300)
    studio = open_studio(Settings(data_dir, f"sqlite:///{data_dir / 'studio.db'}"))
    blocker = sqlite3.connect(data_dir / "studio.db", isolation_level=None)
    try:
        blocker.execute("BEGIN EXCLUSIVE")
        started = time.monotonic()
        with pytest.raises(DatabaseUnavailableError, match="locked") as caught:
            create_tool(studio, "newcomer", "good,dent", actor=SYSTEM)
        assert time.monotonic() - started < 3
        assert "nothing was changed" in str(caught.value)
        blocker.execute("ROLLBACK")

        # once the other program lets go, the same call works
        assert create_tool(studio, "newcomer", "good,dent", actor=SYSTEM).name == "newcomer"
    finally:
        blocker.close()
        studio.engine.dispose()
    assert tool_names(data_dir) == ["existing", "newcomer"]


def test_import_hitting_a_lock_raises_and_can_be_retried(data_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                                          elpv_subset: Path) -> None:
    """An import that hits a lock raises (no file is silently dropped), records no sample, and a retry works."""
    monkeypatch.setattr(storage.db, "SQLITE_BUSY_TIMEOUT_MS", 200)
    studio = open_studio(Settings(data_dir, f"sqlite:///{data_dir / 'studio.db'}"))
    data = sorted((elpv_subset / "good").glob("*.png"))[0].read_bytes()
    blocker = sqlite3.connect(data_dir / "studio.db", isolation_level=None)
    try:
        blocker.execute("BEGIN EXCLUSIVE")
        with pytest.raises(DatabaseUnavailableError, match="locked"):
            add_images(studio, "existing", [Candidate("a.png", "good", lambda: data)], actor=SYSTEM)
        blocker.execute("ROLLBACK")
        with sqlite3.connect(data_dir / "studio.db") as check:
            assert check.execute("SELECT count(*) FROM sample").fetchone() == (0,)
        # retrying after the lock is gone imports the image once
        assert add_images(studio, "existing", [Candidate("a.png", "good", lambda: data)], actor=SYSTEM).imported == 1
    finally:
        blocker.close()
        studio.engine.dispose()


def test_writable_database_still_writes(writable: Studio, data_dir: Path) -> None:
    """Control for the tests above: the same data folder accepts writes when nothing blocks it."""
    create_tool(writable, "fresh", "good,crack", actor=SYSTEM)
    assert tool_names(data_dir) == ["existing", "fresh"]


def test_unreachable_postgresql(tmp_path: Path) -> None:
    url = f"postgresql+psycopg://studio@/nowhere?host={tmp_path / 'no-server'}&port=1&connect_timeout=2"
    with pytest.raises(DatabaseUnavailableError, match="unavailable|cannot be opened"):
        open_studio(Settings(tmp_path / "data", url))
