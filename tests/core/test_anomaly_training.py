"""``train --kind anomaly`` and predicting with both models, through the core services and the real
command line, on real ELPV cells: goods only, the user told about ignored labels, reference scores,
the active anomaly model, both opinions stored, degraded mode and cancellation."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from sqlalchemy import select

from core.audit import SYSTEM
from core.config import Settings
from core.errors import InvalidInputError, TrainingCancelledError
from core.inspect.models import load_tool_models
from core.inspect.service import predict_image
from core.samples import import_path
from core.studio import Studio, open_studio
from core.tool_settings import change_settings
from core.tools import create_tool, get_tool
from core.training import train
from models.anomaly.estimator import MIN_GOOD_IMAGES
from storage import repository as repo
from storage.tables import Inspection
from tests.cli_accounts import add_accounts

ROOT = Path(__file__).resolve().parents[2]
TOOL = "cells"


def _new_studio(folder: Path) -> Studio:
    return open_studio(Settings(data_dir=folder / "data", database_url=f"sqlite:///{folder / 'data' / 'studio.db'}"))


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory, elpv_subset: Path):
    """A studio whose tool has the 40 committed cells, a classifier and an anomaly model."""
    studio = _new_studio(tmp_path_factory.mktemp("anomaly"))
    create_tool(studio, TOOL, ["good", "defective"], actor=SYSTEM)
    import_path(studio, TOOL, elpv_subset, actor=SYSTEM)
    classifier = train(studio, TOOL, actor=SYSTEM)
    stages: list[tuple[str, float]] = []
    anomaly = train(studio, TOOL, method="anomaly", progress=lambda s, f: stages.append((s, f)), actor=SYSTEM)
    return studio, classifier, anomaly, stages


def test_anomaly_training_uses_the_goods_only_and_says_so(both) -> None:
    studio, classifier, anomaly, stages = both
    assert anomaly.method == "anomaly" and anomaly.n_samples == 20
    assert any("20 image(s) not labelled 'good' were ignored" in n for n in anomaly.notices)
    assert any("30 more good image(s)" in n for n in anomaly.notices)
    assert anomaly.validation["ignored_non_good"] == 20 and anomaly.validation["n_good"] == 20
    names = [s for s, _ in stages]
    assert [n for i, n in enumerate(names) if i == 0 or names[i - 1] != n] == [
        "loading", "features", "synthetic defects", "coreset", "calibration", "saving", "done"]
    tool = get_tool(studio, TOOL)
    assert tool.active_versions == {"anomaly": anomaly.version_id, "classifier": classifier.version_id}
    with studio.transaction() as session:
        version = repo.get_model_version(session, anomaly.version_id)
        references = version.metrics["reference_scores"]
        statuses = {v.id: v.status for v in repo.list_model_versions(session, tool.id)}
    assert statuses == {classifier.version_id: "active", anomaly.version_id: "active"}
    assert len(references) == 20 and all(0 < s < 1 for s in references)
    assert sum(s > 0.5 for s in references) <= 1  # the threshold is the 20th of 20 scores


def test_predict_gives_both_opinions_and_stores_them(both, elpv_subset: Path) -> None:
    studio, classifier, anomaly, _ = both
    path = sorted((elpv_subset / "defective").glob("*.png"))[0]
    prediction = predict_image(studio, TOOL, path.name, path.read_bytes(), actor=SYSTEM)
    row = prediction.as_dict()
    assert set(row["models"]) == {"classifier", "anomaly"} and row["degraded"] is False
    assert row["models"]["anomaly"]["version"] == anomaly.version_id
    assert row["models"]["classifier"]["version"] == classifier.version_id
    decisions = {o["decision"] for o in row["models"].values()}
    assert row["decision"] == (decisions.pop() if len(decisions) == 1 else "review")
    assert prediction.inspection.map is not None and prediction.inspection.map.shape == (300, 300)
    with studio.transaction() as session:
        stored = session.get(Inspection, prediction.inspection_id)
        assert stored.opinions == row["models"] and stored.degraded is False
        assert stored.anomaly_score == pytest.approx(row["models"]["anomaly"]["score"], abs=1e-6)


def test_policy_setting_decides_which_models_run(both, elpv_subset: Path) -> None:
    studio = both[0]
    image = sorted((elpv_subset / "good").glob("*.png"))[0]
    try:
        change_settings(studio, TOOL, SYSTEM, {"policy": "classifier only"})
        only = predict_image(studio, TOOL, image.name, image.read_bytes(), record=False, actor=SYSTEM).inspection
        assert set(only.models) == {"classifier"} and only.good_only_score is None and not only.degraded
        change_settings(studio, TOOL, SYSTEM, {"policy": "anomaly only"})
        only = predict_image(studio, TOOL, image.name, image.read_bytes(), record=False, actor=SYSTEM).inspection
        assert set(only.models) == {"anomaly"} and only.probabilities == {} and not only.degraded
        assert only.verdict.decision == only.models["anomaly"].verdict.decision
    finally:
        change_settings(studio, TOOL, SYSTEM, {"policy": "cross-check"})
    with pytest.raises(InvalidInputError, match="unknown policy"):
        change_settings(studio, TOOL, SYSTEM, {"policy": "majority"})


def test_a_model_that_fails_to_load_leaves_the_other_deciding_degraded(tmp_path: Path, both, elpv_subset: Path) -> None:
    source, _, anomaly, _ = both
    shutil.copytree(source.settings.data_dir, tmp_path / "data")  # breaking a model leaves the shared one intact
    studio = _new_studio(tmp_path)
    with studio.transaction() as session:
        folder = studio.settings.models_dir / repo.get_model_version(session, anomaly.version_id).artifact_dir
    (folder / "weights.safetensors").write_bytes(b"damaged")
    image = sorted((elpv_subset / "good").glob("*.png"))[0]
    prediction = predict_image(studio, TOOL, image.name, image.read_bytes(), actor=SYSTEM)
    degraded = prediction.as_dict()
    assert degraded["degraded"] is True and "cannot be loaded" in degraded["models"]["anomaly"]["error"]
    assert degraded["decision"] == degraded["models"]["classifier"]["decision"]
    assert prediction.inspection.good_only_score is None
    with studio.transaction() as session:
        assert session.scalars(select(Inspection.degraded).where(Inspection.id == prediction.inspection_id)).one()
    assert load_tool_models(studio, TOOL).errors.keys() == {"anomaly"}
    # the wanted model is broken: the classifier decides
    change_settings(studio, TOOL, SYSTEM, {"policy": "anomaly only"})
    fallback = predict_image(studio, TOOL, image.name, image.read_bytes(), record=False, actor=SYSTEM).inspection
    assert fallback.degraded is True and "classifier" in fallback.models


def test_too_few_goods_and_cancel(tmp_path: Path, elpv_subset: Path) -> None:
    studio = _new_studio(tmp_path)
    create_tool(studio, TOOL, ["good", "defective"], actor=SYSTEM)
    goods = sorted((elpv_subset / "good").glob("*.png"))
    folder = tmp_path / "few"
    folder.mkdir()
    for path in goods[: MIN_GOOD_IMAGES - 1]:
        shutil.copy(path, folder)
    import_path(studio, TOOL, folder, "good", actor=SYSTEM)
    with pytest.raises(InvalidInputError, match="at least 5 good images \\(1 more\\)"):
        train(studio, TOOL, method="anomaly", actor=SYSTEM)
    shutil.copy(goods[MIN_GOOD_IMAGES], folder)
    import_path(studio, TOOL, folder, "good", actor=SYSTEM)
    cancel = threading.Event()

    def stop_during_features(stage: str, fraction: float) -> None:
        if stage == "features":
            cancel.set()

    with pytest.raises(TrainingCancelledError):
        train(studio, TOOL, method="anomaly", progress=stop_during_features, cancel=cancel, actor=SYSTEM)
    assert "anomaly" not in get_tool(studio, TOOL).active_versions


def test_cli_train_kind_anomaly_then_predict(tmp_path: Path, elpv_subset: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "STUDIO_DATA_DIR")}
    env["STUDIO_DATA_DIR"] = str(tmp_path / "data")
    add_accounts(env)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "core", *args], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=600)

    assert cli("tools", "create", TOOL, "--classes", "good,defective").returncode == 0
    assert cli("samples", "import", str(elpv_subset), "--tool", TOOL).returncode == 0
    trained = cli("train", "--tool", TOOL, "--kind", "anomaly")
    assert trained.returncode == 0, trained.stderr
    result = json.loads(trained.stdout.splitlines()[-1])
    assert result["method"] == "anomaly" and result["n_samples"] == 20
    assert "note: 20 image(s) not labelled 'good' were ignored" in trained.stderr
    assert "train features: 100%" in trained.stderr
    paths = [str(p) for p in sorted((elpv_subset / "defective").glob("*.png"))[:2]]
    predicted = cli("predict", "--tool", TOOL, "--no-record", *paths)
    assert predicted.returncode == 0, predicted.stderr
    rows = [json.loads(line) for line in predicted.stdout.splitlines()]
    for row in rows:
        assert 0 < row["models"]["anomaly"]["score"] < 1 and row["degraded"] is True  # no classifier: degraded
        assert set(row["models"]) == {"anomaly"} and row["model_version"] == result["version_id"]
        assert row["decision"] == row["models"]["anomaly"]["decision"]
