"""The README's backup and restore procedure on real components: ``pg_dump`` / ``pg_restore`` of a real
PostgreSQL and a copy of a versioned bucket on a moto S3 server; the restored database is at the newest
migration, its audit trail verifies against the head recorded at backup time, it passes ``store check``
and a fresh PC reads every image, map and model from it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import create_engine

from core.audit import SYSTEM
from core.audit import log as audit_log
from core.audit_trail import chain_head, verify
from core.config import Settings
from core.heatmap import inspection_heatmap
from core.inspect.decision import Verdict
from core.inspect.engine import Inspection
from core.inspect.recorder import RecordContext
from core.model_artifacts import fetch_artifact, publish_artifact
from core.store_check import check_store
from core.studio import Studio, open_studio
from core.tool_settings import ToolSettings
from core.tools import create_tool
from models.artifacts import WEIGHTS_FILE
from storage import repository as repo
from storage.migrate import is_at_head
from tests.postgres import TemporaryPostgres
from tests.s3 import MotoS3

pytestmark = pytest.mark.slow
TOOL = "cells"


def _record(studio: Studio, tool_id: int, rng: np.random.Generator) -> int:
    verdict = Verdict("fail", "defective", 0.9)
    judged = Inspection(TOOL, tool_id, verdict, {}, {}, False, {"defective": 0.9}, (0, 0, 40, 40),
                        rng.integers(0, 256, (40, 40, 3), dtype=np.uint8), map=rng.random((8, 8), dtype=np.float32),
                        settings=ToolSettings(keep_pass_share=0.0))
    return studio.recorder.record(judged, RecordContext(studio.settings.station)).inspection_id


def _copy_bucket(client: Any, source: str, target: str) -> int:
    """``mc mirror`` / ``aws s3 sync`` of every current object (the same keys)."""
    copied = 0
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=source):
        for item in page.get("Contents", []):
            client.copy_object(Bucket=target, Key=item["Key"], CopySource={"Bucket": source, "Key": item["Key"]})
            copied += 1
    return copied


def _empty_bucket(client: Any, bucket: str) -> None:
    """The disaster: every version of every object gone."""
    for page in client.get_paginator("list_object_versions").paginate(Bucket=bucket):
        for item in page.get("Versions", []) + page.get("DeleteMarkers", []):
            client.delete_object(Bucket=bucket, Key=item["Key"], VersionId=item["VersionId"])


def test_restore_from_pg_dump_and_a_bucket_copy(postgres: TemporaryPostgres, own_s3_server: MotoS3, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STUDIO_S3_ENDPOINT", own_s3_server.endpoint)
    client = own_s3_server.client()
    bucket, backup = own_s3_server.new_bucket(), own_s3_server.new_bucket()
    client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    store_url = f"s3://{bucket}/plant"
    url = postgres.create_database("plant_live")
    station = open_studio(Settings(tmp_path / "station", url, "st1", store_url))
    tool_id = create_tool(station, TOOL, "good,defective", actor=SYSTEM).id
    folder = station.settings.models_dir / TOOL / "v1"  # a model version, published with its manifest
    folder.mkdir(parents=True)
    (folder / WEIGHTS_FILE).write_bytes(b"weights of version 1")
    (folder / "model.json").write_text("{}")
    manifest = publish_artifact(station, folder)
    with station.transaction() as session:
        version_id = repo.add_model_version(
            session, tool_id=tool_id, method="classifier", profile="fast", status="candidate", metrics={},
            artifact_dir=f"{TOOL}/v1", train_seconds=1.0, n_samples=2, artifact_manifest=manifest).id
    rng = np.random.default_rng(0)
    before = [_record(station, tool_id, rng) for _ in range(3)]

    with station.transaction() as session:  # the trail has rows to verify (tool creation by SYSTEM has none)
        for n in range(3):
            audit_log(session, SYSTEM, "backup_drill", f"row {n}", tool_id)
    head = chain_head(station)  # recorded outside the studio with every backup (`audit head`)
    assert head.seq == 3

    # the backup: the database first, then the bucket
    dump = postgres.dir / "plant.dump"
    postgres._run(str(postgres.bin_dir / "pg_dump"), "--format=custom", f"--file={dump}", "-h", str(postgres.dir),
                  "-p", str(postgres.port), "-U", "studio", "plant_live")
    after = _record(station, tool_id, rng)  # between the dump and the copy: in the bucket copy, not in the dump
    assert station.images.objects.drain(timeout=60)  # its crop and map are written behind: uploaded before the copy
    assert _copy_bucket(client, bucket, backup) == 3 * 2 + 2 + 2  # 3 crops + 3 maps, 2 model files, the 4th
    later = _record(station, tool_id, rng)  # after the backup: lost with the disaster
    station.engine.dispose()

    # the disaster: the database and every object are gone
    postgres._run(str(postgres.bin_dir / "dropdb"), "-h", str(postgres.dir), "-p", str(postgres.port), "-U",
                  "studio", "plant_live")
    _empty_bucket(client, bucket)

    # the restore
    restored = postgres.create_database("plant_restored")
    postgres._run(str(postgres.bin_dir / "pg_restore"), "--no-owner", "-h", str(postgres.dir), "-p",
                  str(postgres.port), "-U", "studio", "-d", "plant_restored", str(dump))
    _copy_bucket(client, backup, bucket)
    engine = create_engine(restored)
    assert is_at_head(engine)  # the restored schema is this version's: the studio opens it without migrating
    engine.dispose()
    tablet = open_studio(Settings(tmp_path / "fresh-pc", restored, "tablet", store_url))  # no local files at all
    chain = verify(tablet, head)  # `audit verify --expect HEAD`: the trail came back whole
    assert chain.ok and chain.head == head, chain.problems
    report = check_store(tablet)
    assert report.problems == 0, report  # every row of the dump has its objects
    assert len(report.unreferenced_files) == 2  # the crop and map of the inspection made after the dump
    with tablet.transaction() as session:
        assert repo.get_inspection(session, after) is None and repo.get_inspection(session, later) is None
    for inspection_id in before:
        shown = inspection_heatmap(tablet, inspection_id)  # crop and stored map, from the restored bucket
        assert shown is not None and shown.shape == (40, 40, 3)
    fetched = fetch_artifact(tablet, version_id)  # the model from the restored bucket, hash-checked
    assert (fetched / WEIGHTS_FILE).read_bytes() == b"weights of version 1"
    repaired = check_store(tablet, repair=True, grace_seconds=0)
    assert repaired.repaired["files"] == 2 and check_store(tablet).garbage == 0
    tablet.engine.dispose()
