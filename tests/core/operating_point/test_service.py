"""A tool with both models on real ELPV cells: the calibration scores each version stores, the
operating point applied through change_settings (audited), the engine deciding with it, the fallback
when the versions change, and the CLI's JSON line."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from core.audit import SYSTEM, Actor, audit_log
from core.auth.roles import Role
from core.config import Settings
from core.errors import InvalidInputError
from core.inspect.decision import decide_between
from core.inspect.models import load_tool_models
from core.inspect.recorder import RecordContext
from core.inspect.service import predict_image
from core.operating_point import service
from core.operating_point.choose import Targets
from core.operating_point.training_scores import KEY
from core.samples import import_path
from core.studio import Studio, open_studio
from core.tool_settings import change_settings, tool_settings
from core.tools import create_tool
from core.training import train
from storage import repository as repo
from tests.cli_accounts import add_accounts

pytestmark = pytest.mark.slow  # trains two models
ROOT = Path(__file__).resolve().parents[3]
TOOL = "cells"
ENGINEER = Actor("eva", "office-pc", Role.ENGINEER)
PER_CLASS = 10


def _studio(folder: Path) -> Studio:
    return open_studio(Settings(data_dir=folder / "data", database_url=f"sqlite:///{folder / 'data' / 'studio.db'}"))


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory, elpv_subset: Path) -> Path:
    """A data folder: 10 + 10 committed cells, a classifier and an anomaly model (fast profile)."""
    folder = tmp_path_factory.mktemp("oppoint")
    studio = _studio(folder)
    create_tool(studio, TOOL, ["good", "defective"], actor=SYSTEM)
    for label in ("good", "defective"):
        for path in sorted((elpv_subset / label).glob("*.png"))[:PER_CLASS]:
            import_path(studio, TOOL, path, label=label, actor=SYSTEM)
    train(studio, TOOL, profile="fast", actor=SYSTEM)
    train(studio, TOOL, method="anomaly", profile="fast", actor=SYSTEM)
    studio.engine.dispose()
    return folder


@pytest.fixture
def studio(template: Path, tmp_path: Path) -> Studio:
    shutil.copytree(template / "data", tmp_path / "data")
    studio = _studio(tmp_path)
    yield studio
    studio.engine.dispose()


def test_each_version_stores_scores_of_every_training_image_by_sample(studio: Studio) -> None:
    versions = load_tool_models(studio, TOOL).version_ids
    with studio.transaction() as session:
        stored = {m: repo.get_model_version(session, v).metrics[KEY] for m, v in versions.items()}
        goods = repo.get_model_version(session, versions["anomaly"]).metrics["reference_scores"]
    assert set(stored) == {"classifier", "anomaly"}
    assert stored["classifier"]["sample_ids"] == stored["anomaly"]["sample_ids"]
    assert sum(stored["anomaly"]["defect"]) == PER_CLASS and len(stored["anomaly"]["scores"]) == 2 * PER_CLASS
    anomaly = stored["anomaly"]
    assert [round(s, 6) for s in goods] == [s for s, d in zip(anomaly["scores"], anomaly["defect"], strict=True)
                                            if not d]


def test_an_applied_point_is_audited_and_decides_with_the_combined_score(studio: Studio,
                                                                         elpv_subset: Path) -> None:
    choice, point = service.apply(studio, TOOL, Targets(0.2), ENGINEER)
    assert point.versions == load_tool_models(studio, TOOL).version_ids
    assert set(point.combination.weights) == {"classifier", "anomaly"}
    entry = audit_log(studio, TOOL)[0]
    assert (entry.action, entry.actor) == ("settings", "eva")
    assert entry.details["changes"]["operating_point"]["from"] is None
    assert entry.details["changes"]["operating_point"]["to"]["lo"] == point.lo
    assert tool_settings(studio, TOOL).operating_point.as_json() == point.as_json()
    cells = sorted((elpv_subset / "defective").glob("*.png"))[-3:] + sorted((elpv_subset / "good").glob("*.png"))[-3:]
    for path in cells:
        inspection = predict_image(studio, TOOL, path.name, path.read_bytes(), record=False, actor=SYSTEM).inspection
        scores = {m: v.verdict.score for m, v in inspection.models.items()}
        assert inspection.combined_score == pytest.approx(point.combination.score(scores))
        expected = decide_between(inspection.combined_score, "good", "defective", point.lo, point.hi)
        assert inspection.verdict.decision == expected.decision
        row = inspection.as_dict(path.name)
        assert set(row["models"]) == {"classifier", "anomaly"}
        assert set(row["models"]["anomaly"]) == {"version", "decision", "label", "score", "threshold"}
        assert row["combined_score"] == pytest.approx(inspection.combined_score, abs=1e-6)


def test_a_point_of_other_versions_falls_back_with_a_notice_until_recomputed(studio: Studio,
                                                                             elpv_subset: Path) -> None:
    _, point = service.apply(studio, TOOL, Targets(0.2, "max_escape", 0.2), ENGINEER)
    stale = {**point.as_json(), "versions": {**point.versions, "classifier": point.versions["classifier"] + 100}}
    change_settings(studio, TOOL, ENGINEER, {"operating_point": stale})
    models = load_tool_models(studio, TOOL)
    assert models.operating_point is None and "recomputed" in models.notices[0]
    cell = sorted((elpv_subset / "good").glob("*.png"))[-1]
    assert predict_image(studio, TOOL, cell.name, cell.read_bytes(), record=False,
        actor=SYSTEM).inspection.combined_score is None
    choice, again = service.recompute(studio, TOOL, ENGINEER)
    assert again.targets == point.targets and again.versions == point.versions
    assert load_tool_models(studio, TOOL).operating_point is not None
    service.clear(studio, TOOL, ENGINEER)
    assert tool_settings(studio, TOOL).operating_point is None


def test_cli_shows_then_applies_with_json_on_the_last_line(studio: Studio, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "STUDIO_DATA_DIR")}
    env["STUDIO_DATA_DIR"] = str(tmp_path / "data")
    add_accounts(env, ("carl", "dora"), Role.ENGINEER)
    done = subprocess.run([sys.executable, "-m", "core", "operating-point", "--tool", TOOL, "--max-review", "0.2",
                           "--max-false-reject", "0.15", "--apply", "--who", "carl"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["applied"] and result["targets"]["goal"] == "max_false_reject"
    assert {"escape", "false_reject", "review", "escape_range", "false_reject_bound"} <= result["promised"].keys()
    assert "conformal risk control" in result["rule"]
    assert audit_log(studio, TOOL)[0].actor == "carl"
    assert tool_settings(studio, TOOL).operating_point.lo == pytest.approx(result["lo"], abs=1e-6)


def test_adapting_reads_the_recent_inspections_of_the_deciding_versions_and_is_audited(
        studio: Studio, elpv_subset: Path, tmp_path: Path) -> None:
    cells = [p for label in ("good", "defective") for p in sorted((elpv_subset / label).glob("*.png"))[PER_CLASS:]]
    inspections = [predict_image(studio, TOOL, p.name, p.read_bytes(), record=False,
        actor=SYSTEM).inspection for p in cells]
    for _ in range(3):  # the line sees each part type several times: 60 recorded inspections
        for inspection in inspections:
            studio.recorder.record(inspection, RecordContext())
    versions = load_tool_models(studio, TOOL).version_ids
    recent = service.recent_scores(studio, TOOL, versions, window=100)
    assert {m: len(v) for m, v in recent.items()} == {"classifier": 60, "anomaly": 60}
    assert service.recent_scores(studio, TOOL, {**versions, "classifier": versions["classifier"] + 1},
                                 window=100)["classifier"].size == 0  # other versions' scores are not used
    with pytest.raises(InvalidInputError, match="at least 50 inspected parts"):
        service.propose(studio, TOOL, Targets(0.2), adapt=20)
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "STUDIO_DATA_DIR")}
    env["STUDIO_DATA_DIR"] = str(tmp_path / "data")
    add_accounts(env, ("carl", "dora"), Role.ENGINEER)
    done = subprocess.run([sys.executable, "-m", "core", "operating-point", "--tool", TOOL, "--max-review", "0.2",
                           "--adapt", "--window", "60", "--apply", "--who", "dora"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["adapted"]["n_new"] == 60 and 0.0 <= result["adapted"]["defect_share"] <= 1.0
    if result["adapted"]["used"]:  # or refused by the cross-check of the models' own fitted shares
        assert result["adaptation"] == "used" and result["rule"].startswith("adapted to new parts")
    else:
        assert result["adaptation"].startswith("refused: the mixture does not describe these parts")
        assert result["rule"].startswith("training images only (adaptation refused")
    assert set(result["adapted"]["model_shares"]) == {"classifier", "anomaly"}
    entry = audit_log(studio, TOOL)[0]
    assert entry.actor == "dora" and entry.details["changes"]["operating_point"]["to"]["promised"]["adapted"][
        "n_new"] == 60
    assert tool_settings(studio, TOOL).operating_point.lo == pytest.approx(result["lo"], abs=1e-6)
