"""Studios on one database and one object store (S3 via moto): a part recorded on a station is shown on a
tablet (image, thumbnail, defect map, model fetched and checked), and ``store check`` on both backends."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.analytics.thumbnails import thumbnail_uri
from core.audit import SYSTEM
from core.config import Settings
from core.fleet.heartbeat import Beat, beat, fleet, store_problem
from core.heatmap import inspection_heatmap
from core.images import decode_image, decode_map, encode_png
from core.inspect.decision import Verdict
from core.inspect.engine import Inspection
from core.inspect.recorder import RecordContext
from core.model_artifacts import ArtifactUnavailableError, fetch_artifact
from core.samples import import_path
from core.store_check import check_store
from core.studio import Studio, open_studio
from core.thumbnails import thumbnail_store
from core.tool_settings import ToolSettings
from core.tools import create_tool
from core.training import train
from models.artifacts import WEIGHTS_FILE
from storage import repository as repo
from storage.objects import S3Objects
from tests.inspections import classifier_of, record
from tests.s3 import MotoS3, wait_until

TOOL = "cells"


def _studio(folder: Path, database_url: str, station: str, store_url: str | None) -> Studio:
    return open_studio(Settings(folder, database_url, station, store_url))


@pytest.fixture
def plant(s3_server: MotoS3, monkeypatch: pytest.MonkeyPatch) -> str:
    """``STUDIO_OBJECT_STORE`` of a fresh bucket, its endpoint in ``STUDIO_S3_ENDPOINT``."""
    monkeypatch.setenv("STUDIO_S3_ENDPOINT", s3_server.endpoint)
    return f"s3://{s3_server.new_bucket()}/plant"


@pytest.mark.slow
def test_a_part_recorded_on_a_station_is_shown_on_a_tablet(plant: str, database_url: str, tmp_path: Path,
                                                            elpv_subset: Path, s3_server: MotoS3) -> None:
    station = _studio(tmp_path / "station-a", database_url, "station-a", plant)
    tablet = _studio(tmp_path / "tablet", database_url, "tablet-1", plant)
    create_tool(station, TOOL, "good,defective", actor=SYSTEM)
    good, bad = sorted((elpv_subset / "good").glob("*.png")), sorted((elpv_subset / "defective").glob("*.png"))
    for path in good[:6]:
        import_path(station, TOOL, path, label="good", actor=SYSTEM)
    for path in bad[:6]:
        import_path(station, TOOL, path, label="defective", actor=SYSTEM)
    version_id = train(station, TOOL, actor=SYSTEM).version_id
    rgb = decode_image(bad[1].read_bytes()).rgb
    inspection = record(station, TOOL, Verdict("fail", "defective", 0.9), {"good": 0.1, "defective": 0.9},
                        encode_png(rgb), version_id=version_id)
    assert not (tmp_path / "station-a" / "images").exists()  # nothing on the station's disk but the spool
    # images and thumbnails are written behind: the uploader sends them within moments
    assert station.images.objects.drain(timeout=60) and thumbnail_store(station).objects.drain(timeout=60)

    with tablet.transaction() as session:
        key = repo.get_inspection(session, inspection).image_key
        version = repo.get_model_version(session, version_id)
        thumbs = [s.thumb_key for s in repo.list_samples(session, version.tool_id)]
    assert decode_image(tablet.images.read(key)).rgb.shape == rgb.shape
    assert thumbnail_uri(tablet, key) is not None
    assert len(thumbs) == 12
    for thumb in thumbs:
        assert thumbnail_store(tablet).read(thumb)
    assert not (tmp_path / "tablet" / "models").exists()
    shown = inspection_heatmap(tablet, inspection)  # the model comes from the object store
    assert shown is not None and shown.shape == rgb.shape
    folder = tmp_path / "tablet" / "models" / version.artifact_dir
    assert fetch_artifact(tablet, version_id) == folder
    assert set(version.artifact_manifest["files"]) == {p.name for p in folder.iterdir()}
    assert classifier_of(tablet, TOOL).version_id == version_id


@pytest.mark.slow
def test_a_tampered_artifact_is_never_loaded(plant: str, tmp_path: Path, elpv_subset: Path,
                                             s3_server: MotoS3) -> None:
    url = f"sqlite:///{tmp_path / 'studio.db'}"
    station = _studio(tmp_path / "station-a", url, "station-a", plant)
    other = _studio(tmp_path / "station-b", url, "station-b", plant)
    create_tool(station, TOOL, "good,defective", actor=SYSTEM)
    for label in ("good", "defective"):
        for path in sorted((elpv_subset / label).glob("*.png"))[:5]:
            import_path(station, TOOL, path, label=label, actor=SYSTEM)
    version_id = train(station, TOOL, actor=SYSTEM).version_id
    with station.transaction() as session:
        version = repo.get_model_version(session, version_id)
    weights = version.artifact_manifest["files"][WEIGHTS_FILE]
    bucket = plant.removeprefix("s3://").split("/", 1)[0]
    remote = S3Objects(s3_server.client(), bucket, "plant/artifacts")
    remote.client.put_object(Bucket=bucket, Key=remote.prefix + weights["key"], Body=b"not the weights")
    with pytest.raises(ArtifactUnavailableError, match="damaged"):
        fetch_artifact(other, version)
    assert not (tmp_path / "station-b" / "models" / version.artifact_dir).exists()
    # the station that trained it still has intact files: served from its cache after checking them
    assert fetch_artifact(station, version).is_dir()


def test_a_damaged_local_artifact_is_refused(studio: Studio, tmp_path: Path) -> None:
    from core.model_artifacts import publish_artifact

    folder = studio.settings.models_dir / TOOL / "v1"
    folder.mkdir(parents=True)
    (folder / WEIGHTS_FILE).write_bytes(b"weights")
    (folder / "model.json").write_text("{}")
    manifest = publish_artifact(studio, folder)
    create_tool(studio, TOOL, "good,defective", actor=SYSTEM)
    with studio.transaction() as session:
        tool_id = repo.get_tool(session, TOOL).id
        row = repo.add_model_version(session, tool_id=tool_id, method="classifier", profile="fast",
                                     status="candidate", metrics={}, artifact_dir=f"{TOOL}/v1", train_seconds=1.0,
                                     n_samples=2, artifact_manifest=manifest)
        version_id = row.id
    assert fetch_artifact(studio, version_id) == folder
    (folder / WEIGHTS_FILE).write_bytes(b"weightz")
    with pytest.raises(ArtifactUnavailableError):
        fetch_artifact(studio, version_id)


@pytest.mark.parametrize("backend", ["local", "s3"])
def test_store_check_on_both_backends(backend: str, tmp_path: Path, elpv_subset: Path,
                                      request: pytest.FixtureRequest) -> None:
    store_url = request.getfixturevalue("plant") if backend == "s3" else None
    studio = _studio(tmp_path / "data", f"sqlite:///{tmp_path / 'studio.db'}", "station-a", store_url)
    create_tool(studio, TOOL, "good,defective", actor=SYSTEM)
    cells = sorted((elpv_subset / "good").glob("*.png"))
    kept = record(studio, TOOL, Verdict("fail", "defective", 0.9), image=cells[0].read_bytes())
    lost = record(studio, TOOL, Verdict("fail", "defective", 0.8), image=cells[1].read_bytes())
    orphan, _ = studio.images.put(b"written, its row never committed", "png")
    with studio.transaction() as session:
        lost_key = repo.get_inspection(session, lost).image_key
        kept_key = repo.get_inspection(session, kept).image_key
    studio.images.delete(lost_key)
    report = check_store(studio)
    assert report.inspections_without_image == [lost]
    assert report.unreferenced_files == [f"images/{orphan}"]
    young = check_store(studio, repair=True)  # younger than the grace period: kept
    assert young.kept_young == 1 and studio.images.exists(orphan)
    repaired = check_store(studio, repair=True, grace_seconds=0)
    assert repaired.repaired["files"] == 1 and not studio.images.exists(orphan)
    assert studio.images.exists(kept_key) and check_store(studio).unreferenced_files == []


def test_a_station_keeps_recording_while_the_store_is_down_and_says_so(own_s3_server: MotoS3, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STUDIO_S3_ENDPOINT", own_s3_server.endpoint)
    store_url = f"s3://{own_s3_server.new_bucket()}/plant"
    station = _studio(tmp_path / "station-a", f"sqlite:///{tmp_path / 'studio.db'}", "station-a", store_url)
    tool_id = create_tool(station, TOOL, "good,defective", actor=SYSTEM).id
    rng = np.random.default_rng(0)

    def inspect_once() -> int:
        verdict = Verdict("fail", "defective", 0.9)
        judged = Inspection(TOOL, tool_id, verdict, {}, {}, False, {"defective": 0.9}, (0, 0, 40, 40),
                            rng.integers(0, 256, (40, 40, 3), dtype=np.uint8),
                            map=rng.random((8, 8), dtype=np.float32), settings=ToolSettings(keep_pass_share=0.0))
        return station.recorder.record(judged, RecordContext("station-a")).inspection_id

    first = inspect_once()  # its crop and map are written behind: uploaded by the spool's uploader
    assert store_problem(station) is None
    assert station.images.objects.drain(timeout=60)
    own_s3_server.stop()
    second = inspect_once()  # the store is down: recorded, its crop and map wait in the spool
    assert station.images.objects.pending() == 2
    assert wait_until(lambda: station.images.objects.last_error is not None)  # the uploader found it down
    said = store_problem(station)
    assert said is not None and "unreachable" in said and "2 images spooled" in said
    beat(station, Beat("station-a", state="degraded", reason=said))
    assert "spooled" in fleet(station)[0]["reason"]  # what the Fleet page shows
    own_s3_server.start()
    assert station.images.objects.drain(timeout=60)
    assert store_problem(station) is None
    tablet = _studio(tmp_path / "tablet", f"sqlite:///{tmp_path / 'studio.db'}", "tablet", store_url)
    for inspection_id in (first, second):  # the tablet sees both, crop and map, from the store
        with tablet.transaction() as session:
            row = repo.get_inspection(session, inspection_id)
        assert row.map_key is not None and decode_map(tablet.images.read(row.map_key)).shape == (8, 8)
        shown = inspection_heatmap(tablet, inspection_id)  # from the stored map: no model needed
        assert shown is not None and shown.shape == (40, 40, 3)
