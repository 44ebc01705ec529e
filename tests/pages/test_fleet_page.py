"""The Fleet page (AppTest): stations from their heartbeats, silent ones in red, degraded ones with why."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update
from streamlit.testing.v1 import AppTest

from core.config import load_settings
from core.fleet.heartbeat import Beat, beat
from core.studio import Studio, open_studio
from storage.fleet_tables import FleetStation
from storage.tables import utc_now

APP = Path(__file__).resolve().parents[2] / "app.py"


@pytest.fixture
def plant(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Studio]:
    monkeypatch.setenv("STUDIO_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    studio = open_studio(load_settings())
    yield studio
    studio.engine.dispose()


def open_fleet() -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.run()
    at.switch_page("pages/fleet.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value == "Fleet"
    return at


def test_empty_fleet_says_how_stations_join(plant: Studio) -> None:
    assert "No station" in open_fleet().info[0].value


def test_stations_ok_degraded_and_silent(plant: Studio) -> None:
    slow = 600.0  # heartbeat periods long enough that the page's own start-up never makes them silent
    beat(plant, Beat("line1", recipe="a", models={"cells": {"classifier": 2}}, fps=10.0, heartbeat_s=slow))
    beat(plant, Beat("line2", state="degraded", reason="tool cells: the new model does not load", heartbeat_s=slow))
    beat(plant, Beat("line3", heartbeat_s=1.0))
    with plant.transaction() as session:  # line3 has not beaten for a minute
        session.execute(update(FleetStation).where(FleetStation.name == "line3")
                        .values(last_seen=utc_now() - timedelta(minutes=1)))
    at = open_fleet()
    table = at.dataframe[0].value
    assert list(table["station"]) == ["line1", "line2", "line3"]
    assert list(table["status"]) == ["🟢 ok", "🟠 degraded", "🔴 silent"]
    assert table["models"][0] == "cells: classifier v2"
    assert "line3" in at.error[0].value and "does not load" in at.warning[0].value
    assert [b.label for b in at.main.button] == []  # read-only: nothing to press (the sidebar has its own)
