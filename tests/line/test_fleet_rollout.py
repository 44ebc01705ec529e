"""Rollouts reach a running station without a restart: NOTIFY on PostgreSQL, polling on SQLite; a
version whose artifact does not load leaves the station on its old one, degraded and audited."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from core.audit import SYSTEM, audit_log
from core.config import Settings
from core.fleet.heartbeat import fleet
from core.line.station import Station, StationOptions
from core.model_versions import promote
from core.studio import Studio, open_studio
from core.tools import create_tool
from storage import repository as repo
from storage.tables import ModelVersion, Tool
from tests.actors import ENGINEER
from tests.line.conftest import wait_until

pytestmark = [pytest.mark.line, pytest.mark.slow]


@pytest.fixture
def fleet_studio(trained_data: Path, tmp_path: Path, database_url: str) -> Studio:
    """The trained ``cells`` tool on each backend: its artifacts copied, its version rows replicated."""
    folder = tmp_path / "data"
    shutil.copytree(trained_data, folder)
    source = open_studio(Settings(folder, f"sqlite:///{folder / 'studio.db'}"))
    with source.transaction() as session:
        tool = session.scalar(select(Tool).where(Tool.name == "cells"))
        classes, versions = ",".join(tool.class_names), list(session.scalars(select(ModelVersion)))
    source.engine.dispose()
    if database_url.startswith("sqlite"):
        studio = open_studio(Settings(folder, f"sqlite:///{folder / 'studio.db'}"))
    else:
        studio = open_studio(Settings(folder, database_url))
        create_tool(studio, "cells", classes, actor=SYSTEM)
        with studio.transaction() as session:
            tool_id = repo.get_tool(session, "cells").id
            for v in versions:
                repo.add_model_version(session, tool_id=tool_id, method=v.method, profile=v.profile, status=v.status,
                                       metrics=v.metrics, artifact_dir=v.artifact_dir, train_seconds=v.train_seconds,
                                       n_samples=v.n_samples)
    yield studio  # type: ignore[misc]
    studio.engine.dispose()


def candidate(studio: Studio, corrupt: bool = False) -> tuple[str, int]:
    """A new candidate version of the active classifier: its artifact copied to a new folder (or broken)."""
    with studio.transaction() as session:
        active = session.scalar(select(ModelVersion).where(ModelVersion.status == "active",
                                                           ModelVersion.method == "classifier"))
        new_dir = f"{active.artifact_dir}-copy{time.monotonic_ns()}"
        shutil.copytree(studio.settings.models_dir / active.artifact_dir, studio.settings.models_dir / new_dir)
        if corrupt:
            for path in (studio.settings.models_dir / new_dir).iterdir():
                if path.is_file():
                    path.write_bytes(b"not a model")
        version = repo.add_model_version(session, tool_id=active.tool_id, method="classifier", profile=active.profile,
                                         status="candidate", metrics=active.metrics, artifact_dir=new_dir,
                                         train_seconds=active.train_seconds, n_samples=active.n_samples)
        return "classifier", version.id


def test_a_promotion_reaches_the_running_station(fleet_studio: Studio, frames: Path) -> None:
    station = Station(fleet_studio, StationOptions("f1", str(frames), tool="cells", heartbeat_s=0.2))
    station.start()
    try:
        if fleet_studio.engine.dialect.name == "postgresql":
            wait_until(lambda: station.fleet.watcher.listening, 30, what="the station to LISTEN")
        method, version_id = candidate(fleet_studio)
        started = time.monotonic()
        promote(fleet_studio, "cells", version_id, ENGINEER)
        wait_until(lambda: station.tools[0].models.version_ids.get(method) == version_id, 30, 0.01,
                   "the station to load the promoted version")
        print(f"rollout reached the station in {time.monotonic() - started:.3f} s")
        wait_until(lambda: fleet(fleet_studio)[0]["models"].get("cells", {}).get(method) == version_id, 30, 0.05,
                   "the Fleet page to show the new version")
        assert station.handshake.signals().bit("Ready") and station.rollout_problem is None
        actions = [r.action for r in audit_log(fleet_studio, "cells", limit=50)]
        assert "rollout_loaded" in actions
    finally:
        station.stop()


def test_a_version_that_does_not_load_leaves_the_old_one_degraded(fleet_studio: Studio, frames: Path) -> None:
    station = Station(fleet_studio, StationOptions("f2", str(frames), tool="cells", heartbeat_s=0.2))
    station.start()
    try:
        old = dict(station.tools[0].models.version_ids)
        _, version_id = candidate(fleet_studio, corrupt=True)
        promote(fleet_studio, "cells", version_id, ENGINEER)
        wait_until(lambda: station.rollout_problem is not None, 30, 0.02, "the station to report the failed load")
        assert station.tools[0].models.version_ids == old  # still inspecting with the old version
        wait_until(lambda: fleet(fleet_studio)[0]["state"] == "degraded", 30, 0.05, "degraded on the Fleet page")
        assert "does not load" in fleet(fleet_studio)[0]["reason"]
        failed = [r for r in audit_log(fleet_studio, "cells", limit=50) if r.action == "rollout_failed"]
        assert failed and failed[0].details["kept"] == {k: v for k, v in old.items()}
    finally:
        station.stop()
