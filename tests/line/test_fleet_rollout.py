"""Rollouts reach a running station without a restart: NOTIFY on PostgreSQL, polling on SQLite; a
version whose artifact does not load leaves the station on its old one, degraded and audited. On the
plant's object store (a real moto S3 server) the artifact is fetched and checked against its hash: a
tampered object is refused and the station keeps its old model."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from core.audit import SYSTEM, audit_log
from core.config import Settings
from core.fleet.heartbeat import fleet
from core.line.station import Station, StationOptions
from core.model_artifacts import publish_artifact
from core.model_versions import promote
from core.studio import Studio, open_studio
from core.tools import create_tool
from storage import repository as repo
from storage.tables import ModelVersion, Tool
from tests.actors import ENGINEER
from tests.line.conftest import wait_until
from tests.s3 import MotoS3

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


@pytest.fixture(scope="module")
def s3() -> Iterator[MotoS3]:
    """A real S3-protocol server (moto) on loopback, reached through the production boto3 code."""
    server = MotoS3()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def plant_studio(fleet_studio: Studio, s3: MotoS3, monkeypatch: pytest.MonkeyPatch) -> Iterator[Studio]:
    """The same studio on the plant's object store (``STUDIO_OBJECT_STORE`` of a fresh bucket)."""
    monkeypatch.setenv("STUDIO_S3_ENDPOINT", s3.endpoint)
    studio = open_studio(replace(fleet_studio.settings, object_store=f"s3://{s3.new_bucket()}/plant"))
    yield studio
    studio.engine.dispose()


def published_candidate(studio: Studio) -> tuple[int, dict[str, Any]]:
    """A candidate copied from the active classifier and published to the object store; its local folder
    is removed, so a station has to fetch it (as a station PC that did not train it)."""
    _, version_id = candidate(studio)
    with studio.transaction() as session:
        version = session.get(ModelVersion, version_id)
        folder = studio.settings.models_dir / version.artifact_dir
        version.artifact_manifest = manifest = publish_artifact(studio, folder)
    shutil.rmtree(folder)
    return version_id, manifest


def test_a_rollout_fetches_the_artifact_from_the_object_store(plant_studio: Studio, frames: Path) -> None:
    station = Station(plant_studio, StationOptions("s3a", str(frames), tool="cells", heartbeat_s=0.2))
    station.start()
    try:
        if plant_studio.engine.dialect.name == "postgresql":
            wait_until(lambda: station.fleet.watcher.listening, 30, what="the station to LISTEN")
        version_id, manifest = published_candidate(plant_studio)
        promote(plant_studio, "cells", version_id, ENGINEER)
        wait_until(lambda: station.tools[0].models.version_ids.get("classifier") == version_id, 30, 0.01,
                   "the station to load the promoted version from the object store")
        with plant_studio.transaction() as session:
            folder = plant_studio.settings.models_dir / session.get(ModelVersion, version_id).artifact_dir
        assert {p.name for p in folder.iterdir()} == set(manifest["files"])  # fetched, hashes checked
        assert station.rollout_problem is None
        assert "rollout_loaded" in [r.action for r in audit_log(plant_studio, "cells", limit=50)]
    finally:
        station.stop()


def test_a_tampered_artifact_in_the_object_store_leaves_the_old_model(plant_studio: Studio, frames: Path,
                                                                      s3: MotoS3) -> None:
    station = Station(plant_studio, StationOptions("s3b", str(frames), tool="cells", heartbeat_s=0.2))
    station.start()
    try:
        old = dict(station.tools[0].models.version_ids)
        version_id, manifest = published_candidate(plant_studio)
        remote = plant_studio.images.objects.remote  # the plant's bucket, as anyone with write access sees it
        bucket, prefix = remote.bucket, remote.prefix.replace("/images/", "/artifacts/")
        entry = max(manifest["files"].values(), key=lambda e: e["size"])
        original = s3.client().get_object(Bucket=bucket, Key=prefix + entry["key"])["Body"].read()
        tampered = bytearray(original)
        tampered[len(tampered) // 2] ^= 0xFF  # one flipped byte, same size
        s3.client().put_object(Bucket=bucket, Key=prefix + entry["key"], Body=bytes(tampered))

        promote(plant_studio, "cells", version_id, ENGINEER)
        wait_until(lambda: station.rollout_problem is not None, 30, 0.02, "the station to report the failed fetch")
        assert station.tools[0].models.version_ids == old  # still inspecting with the old version
        assert "damaged" in station.rollout_problem
        wait_until(lambda: next(s for s in fleet(plant_studio) if s["name"] == "s3b")["state"] == "degraded", 30,
                   0.05, "degraded on the Fleet page")
        assert "damaged" in next(s for s in fleet(plant_studio) if s["name"] == "s3b")["reason"]
        failed = [r for r in audit_log(plant_studio, "cells", limit=50) if r.action == "rollout_failed"]
        assert failed and failed[0].details["kept"] == old and "damaged" in failed[0].details["error"]
        with plant_studio.transaction() as session:
            folder = plant_studio.settings.models_dir / session.get(ModelVersion, version_id).artifact_dir
        assert not folder.exists()  # nothing unverified is left where a load would find it
    finally:
        station.stop()


def test_a_promotion_while_the_object_store_is_down_loads_once_it_is_back(plant_studio: Studio, frames: Path,
                                                                         s3: MotoS3) -> None:
    station = Station(plant_studio, StationOptions("s3c", str(frames), tool="cells", heartbeat_s=0.2))
    station.start()
    try:
        old = dict(station.tools[0].models.version_ids)
        version_id, _ = published_candidate(plant_studio)
        s3.stop()
        try:
            promote(plant_studio, "cells", version_id, ENGINEER)
            wait_until(lambda: station.rollout_problem is not None, 30, 0.02, "the station to report the failed fetch")
            assert station.tools[0].models.version_ids == old  # still inspecting with the old version
            wait_until(lambda: next(s for s in fleet(plant_studio) if s["name"] == "s3c")["state"] == "degraded", 30,
                       0.05, "degraded on the Fleet page")
            wait_until(lambda: station.fleet.watcher.retry_at > 0, 30, 0.02, "a retry to be scheduled")
        finally:
            s3.start()
        wait_until(lambda: station.tools[0].models.version_ids.get("classifier") == version_id, 90, 0.05,
                   "the station to load the promoted version once the store is back")
        assert station.rollout_problem is None
        wait_until(lambda: next(s for s in fleet(plant_studio) if s["name"] == "s3c")["state"] == "ok", 30, 0.05,
                   "OK on the Fleet page")
        actions = [r.action for r in audit_log(plant_studio, "cells", limit=50)]
        assert actions.count("rollout_failed") == 1  # retries that fail the same way are not audited again
        assert actions.index("rollout_loaded") < actions.index("rollout_failed")  # newest first: loaded after
    finally:
        station.stop()
