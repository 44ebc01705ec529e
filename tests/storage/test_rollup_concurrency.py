"""Two writers at once on PostgreSQL: the analytics rollups lose no increment. The upsert of a rollup key
that another open transaction has just written waits for that transaction, then adds to its count
(``INSERT ... ON CONFLICT DO UPDATE count = count + excluded.count`` under READ COMMITTED)."""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from core.audit import SYSTEM
from core.config import Settings
from core.studio import Studio, open_studio
from core.tools import create_tool
from storage import repository as repo
from storage.rollup_tables import InspectionRollup
from storage.tables import Inspection
from tests.postgres import TemporaryPostgres
from tests.rollups import current, recounted

TOOL = "race"
ROW = dict(station="L1/s1", created_at=datetime(2026, 5, 4, 10, 30), decision="fail", label="dent", score=0.73,
           latency_ms=30.0, scores={})
_names = itertools.count()


@pytest.fixture
def pg_studio(postgres: TemporaryPostgres, tmp_path: Path) -> tuple[Studio, int]:
    url = postgres.create_database(f"rollup_race_{next(_names)}")
    studio = open_studio(Settings(data_dir=tmp_path / "data", database_url=url))
    create_tool(studio, TOOL, "good,dent", actor=SYSTEM)
    with studio.transaction() as session:
        return studio, repo.get_tool(session, TOOL).id


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def in_thread(work: Callable[[], None], errors: list[BaseException]) -> threading.Thread:
    def run() -> None:
        try:
            work()
        except BaseException as error:  # noqa: BLE001 - reported by the test
            errors.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def write(studio: Studio, tool_id: int, **fields: object) -> None:
    with studio.transaction() as session:
        repo.add_inspection(session, tool_id=tool_id, **{**ROW, **fields})


def waiting_on_a_lock(studio: Studio) -> bool:
    with studio.engine.connect() as connection:
        return connection.execute(text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                                       "AND datname = current_database()")).scalar_one() > 0


@pytest.mark.parametrize("key_exists", [False, True], ids=["new-key", "existing-key"])
def test_a_writer_blocked_by_another_adds_to_its_count(pg_studio: tuple[Studio, int], key_exists: bool) -> None:
    studio, tool_id = pg_studio
    if key_exists:
        write(studio, tool_id)
    holding, release, errors = threading.Event(), threading.Event(), []

    def first() -> None:  # rolls the inspection up, then keeps its transaction open
        with studio.transaction() as session:
            repo.add_inspection(session, tool_id=tool_id, **ROW)
            holding.set()
            assert release.wait(60)

    threads = [in_thread(first, errors)]
    wait_until(holding.is_set, "the first writer's rollup")
    threads.append(in_thread(lambda: write(studio, tool_id), errors))
    wait_until(lambda: waiting_on_a_lock(studio), "the second writer to wait for the first")
    release.set()
    for thread in threads:
        thread.join(60)
    assert not errors
    expected = 3 if key_exists else 2
    with studio.transaction() as session:
        assert session.scalar(select(func.count()).select_from(Inspection)) == expected
        assert session.scalar(select(func.sum(InspectionRollup.count))) == expected
    assert current(studio) == recounted(studio)


@pytest.mark.slow  # 240 transactions: about 5 s
def test_two_busy_writers_lose_no_increment(pg_studio: tuple[Studio, int]) -> None:
    """Two writers, one inspection per transaction as the recorder writes them, on a few shared keys."""
    studio, tool_id = pg_studio
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def writer(seed: int) -> None:
        rng = random.Random(seed)
        start.wait(30)
        for _ in range(120):
            decision = rng.choice(["pass", "fail"])
            write(studio, tool_id, station=rng.choice(["L1/s1", "L1/s2"]), decision=decision,
                  label="good" if decision == "pass" else "dent", score=rng.choice([0.1, 0.15, 0.8]),
                  created_at=ROW["created_at"] + timedelta(minutes=rng.randrange(90)))

    for thread in [in_thread(lambda s=s: writer(s), errors) for s in (1, 2)]:
        thread.join(120)
    assert not errors
    rolled = current(studio)
    assert rolled == recounted(studio)
    assert sum(row[-1] for row in rolled["inspection_daily_rollup"]) == 240
