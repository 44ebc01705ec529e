"""The station in this process (no PLC server): frame-driven triggers, REST, following the studio's
recipe selector, a camera that drops and comes back."""

from __future__ import annotations

import json
import shutil
import urllib.request
from pathlib import Path

import pytest
from sqlalchemy import func, select

from core.audit import SYSTEM
from core.line.recipes import activate_recipe, create_recipe
from core.line.station import Station, StationOptions
from core.studio import Studio
from storage.line_tables import OutboxEvent
from tests.line.conftest import wait_until

pytestmark = [pytest.mark.line, pytest.mark.slow]


def events(studio: Studio) -> list[OutboxEvent]:
    with studio.transaction() as session:
        return list(session.scalars(select(OutboxEvent).order_by(OutboxEvent.seq)))


def test_continuous_trigger_rest_and_recipe_follow(line_studio: Studio, frames: Path) -> None:
    create_recipe(line_studio, "s3", "a", 1, ["cells"], actor=SYSTEM)
    create_recipe(line_studio, "s3", "b", 2, [{"tool": "cells", "policy": "classifier only"}], actor=SYSTEM)
    station = Station(
        line_studio, StationOptions("s3", str(frames), recipe="a", trigger="continuous", fps=20, heartbeat_s=0.2)
    )
    station.start()
    try:
        wait_until(lambda: len(events(line_studio)) >= 3, 60, 0.05, "inspections triggered by new parts")
        address = station.status()["http"]
        with urllib.request.urlopen(f"http://{address}/status", timeout=5) as response:
            assert json.loads(response.read())["recipe"]["name"] == "a"
        activate_recipe(line_studio, "s3", "b", via="studio", actor=SYSTEM)  # the Line page's selector
        wait_until(lambda: station.recipe is not None and station.recipe.name == "b", 30, 0.05, "the station to follow")
        wait_until(lambda: events(line_studio)[-1].recipe == "b", 60, 0.05, "an inspection under recipe b")
        seqs = [e.seq for e in events(line_studio)]
        assert seqs == list(range(1, len(seqs) + 1))
    finally:
        station.stop()


def test_a_camera_that_drops_and_comes_back(line_studio: Studio, frames: Path, tmp_path: Path) -> None:
    source = tmp_path / "camera"
    shutil.copytree(frames, source)
    station = Station(line_studio, StationOptions("s4", str(source), tool="cells", heartbeat_s=0.2))
    station.start()
    try:
        assert station.handshake.signals().bit("Ready")
        station.grabber.stop()  # the camera is unplugged: the grabber thread ends
        station.grabber.join(10)
        station.grabber.connected, station.grabber.error = False, "camera unplugged"
        wait_until(lambda: not station.handshake.signals().bit("Ready"), 10, what="Ready to drop")
        assert station.handshake.signals().bit("Error") and station.handshake.signals().register("ErrorCode") == 3
        assert any("camera lost" in e["message"] for e in station.errors)
        assert station.trigger("rest")
        wait_until(lambda: station.handshake.signals().bit("ResultReady"), 10, what="an error result")
        assert not station.handshake.signals().bit("Busy")
        with line_studio.transaction() as session:
            assert session.scalar(select(func.count()).select_from(OutboxEvent)) == 0
    finally:
        station.stop()
