"""Training through the core services on real ELPV cells: stored versions, refusals with actionable
messages, damaged samples, cancellation and the per-tool lock.

One module-level studio is trained once (version v1) and shared by the tests that must leave it
unchanged (cancel, busy); tests that change their studio get their own.
"""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.audit import SYSTEM
from core.config import Settings
from core.errors import InvalidInputError, NotFoundError, TrainingBusyError, TrainingCancelledError
from core.model_versions import list_versions
from core.samples import class_counts, import_path
from core.studio import Studio, open_studio
from core.tool_settings import change_settings
from core.tools import create_tool, get_tool
from core.training import train, training_lock
from models.classifier.estimator import MIN_IMAGES_PER_CLASS
from models.profiles import DEFAULT_PROFILE
from models.registry import load_model as load_classifier
from storage import repository as repo
from tests.inspections import classifier_of

TOOL = "cells"


def _new_studio(folder: Path) -> Studio:
    return open_studio(Settings(data_dir=folder / "data", database_url=f"sqlite:///{folder / 'data' / 'studio.db'}"))


def _artifact_folders(studio: Studio, tool: str = TOOL) -> list[str]:
    """Every entry under the tool's models folder, temporary ones included."""
    root = studio.settings.models_dir / tool
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


def _gray_rgb(path: Path) -> np.ndarray:
    return np.repeat(np.asarray(Image.open(path).convert("L"))[:, :, None], 3, axis=2)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, elpv_subset: Path):
    """A studio whose tool ``cells`` has the 40 committed cells and one trained version (v1)."""
    studio = _new_studio(tmp_path_factory.mktemp("trained"))
    create_tool(studio, TOOL, ["good", "defective"], actor=SYSTEM)
    report = import_path(studio, TOOL, elpv_subset, actor=SYSTEM)
    assert report.imported == 40
    assert [name for name, _ in report.rejected] == ["SOURCE.md"]  # no class folder: not a sample
    stages: list[tuple[str, float]] = []
    result = train(studio, TOOL, progress=lambda stage, fraction: stages.append((stage, fraction)), actor=SYSTEM)
    return studio, result, stages


# --- a successful training ------------------------------------------------------------------------
def test_training_stores_the_active_version(trained) -> None:
    studio, result, _ = trained
    assert result.method == "classifier" and result.profile == DEFAULT_PROFILE
    assert result.n_samples == 40 and result.skipped == [] and result.seconds > 0
    assert get_tool(studio, TOOL).active_versions["classifier"] == result.version_id
    versions = list_versions(studio, TOOL)
    assert [(v.id, v.status, v.method, v.profile, v.n_samples) for v in versions] == [
        (result.version_id, "active", "classifier", DEFAULT_PROFILE, 40)]
    assert versions[0].validation == result.validation
    assert result.validation["cv_folds"] == 5
    assert np.array(result.validation["confusion"]).sum() == 40
    assert set(result.validation["recall"]) == {"good", "defective"}
    assert result.as_dict()["version_id"] == result.version_id


def test_progress_goes_through_every_stage_in_order(trained) -> None:
    _, _, stages = trained
    names = [stage for stage, _ in stages]
    order = ["loading", "features", "validation", "fit", "saving", "done"]
    assert [n for i, n in enumerate(names) if i == 0 or names[i - 1] != n] == order
    features = [f for s, f in stages if s == "features"]
    assert features == sorted(features) and features[-1] == 1.0
    assert stages[-1] == ("done", 1.0)


def test_stored_artifact_round_trips(trained, elpv_subset: Path) -> None:
    studio, result, _ = trained
    with studio.transaction() as session:
        version = repo.get_model_version(session, result.version_id)
        artifact_dir = version.artifact_dir
        metrics = dict(version.metrics)
    folder = studio.settings.models_dir / artifact_dir
    assert folder.parent == studio.settings.models_dir / TOOL
    assert _artifact_folders(studio) == [folder.name]
    model = load_classifier(folder)
    again = load_classifier(folder)
    assert model.classes_ == ["defective", "good"]
    assert result.validation == metrics["validation"]
    # the stored report is the model's own plus the mistakes named by sample id
    assert model.validation_ == {k: v for k, v in result.validation.items() if k != "misclassified_samples"}
    cells = [_gray_rgb(elpv_subset / "good" / "cell_0085.png"), _gray_rgb(elpv_subset / "defective" / "cell_0007.png")]
    probabilities = model.predict_proba(cells)
    assert np.array_equal(probabilities, again.predict_proba(cells))
    # the service's loaded model (what predictions use) answers the same
    served = classifier_of(studio, TOOL)
    assert served.version_id == result.version_id
    assert np.array_equal(served.model.predict_proba(cells), probabilities)


# --- cancelling and the lock leave v1 untouched ----------------------------------------------------
def _unchanged(studio: Studio, v1: int, folders: list[str]) -> None:
    assert get_tool(studio, TOOL).active_versions["classifier"] == v1
    assert [(v.id, v.status) for v in list_versions(studio, TOOL)] == [(v1, "active")]
    assert _artifact_folders(studio) == folders


def test_cancelled_training_keeps_the_active_model(trained) -> None:
    studio, result, _ = trained
    folders = _artifact_folders(studio)
    cancel = threading.Event()
    seen: list[str] = []

    def progress(stage: str, fraction: float) -> None:
        seen.append(stage)
        if stage == "features":
            cancel.set()

    with pytest.raises(TrainingCancelledError, match="unchanged"):
        train(studio, TOOL, progress=progress, cancel=cancel, actor=SYSTEM)
    assert seen[-1] == "features" and "validation" not in seen  # stopped during feature extraction
    _unchanged(studio, result.version_id, folders)
    with training_lock(studio, TOOL):  # the lock was released
        pass


def test_cancel_set_before_start_stops_at_once(trained) -> None:
    studio, result, _ = trained
    cancel = threading.Event()
    cancel.set()
    seen: list[str] = []
    with pytest.raises(TrainingCancelledError):
        train(studio, TOOL, progress=lambda s, f: seen.append(s), cancel=cancel, actor=SYSTEM)
    assert seen == []
    _unchanged(studio, result.version_id, _artifact_folders(studio))


def test_concurrent_training_of_the_same_tool_is_refused(trained) -> None:
    studio, result, _ = trained
    folders = _artifact_folders(studio)
    seen: list[str] = []
    with training_lock(studio, TOOL):
        with pytest.raises(TrainingBusyError, match=TOOL):
            train(studio, TOOL, progress=lambda s, f: seen.append(s), actor=SYSTEM)
        # another tool is not blocked by this lock
        with training_lock(studio, "other-tool"):
            pass
    assert seen == []
    _unchanged(studio, result.version_id, folders)


def test_refusals_before_any_work(trained) -> None:
    studio, _, _ = trained
    with pytest.raises(InvalidInputError, match="unknown profile"):
        train(studio, TOOL, profile="huge", actor=SYSTEM)
    with pytest.raises(InvalidInputError, match="unknown model method"):
        train(studio, TOOL, method="segmenter", actor=SYSTEM)
    with pytest.raises(NotFoundError, match="no tool named 'missing'"):
        train(studio, "missing", actor=SYSTEM)


# --- training sets a classifier cannot learn from ---------------------------------------------------
def _copy_cells(source: Path, target: Path, good: int, defective: int) -> Path:
    for label, count in (("good", good), ("defective", defective)):
        if count:
            (target / label).mkdir(parents=True)
            for path in sorted((source / label).glob("*.png"))[:count]:
                shutil.copy(path, target / label / path.name)
    return target


def test_too_few_images_says_how_many_more_are_needed(studio: Studio, elpv_subset: Path, tmp_path: Path) -> None:
    create_tool(studio, TOOL, ["good", "defective"], actor=SYSTEM)
    import_path(studio, TOOL, _copy_cells(elpv_subset, tmp_path / "few", good=4, defective=2), actor=SYSTEM)
    assert class_counts(studio, TOOL) == {"good": 4, "defective": 2}
    with pytest.raises(InvalidInputError) as caught:
        train(studio, TOOL, actor=SYSTEM)
    message = str(caught.value)
    assert f"at least {MIN_IMAGES_PER_CLASS} images" in message
    assert "defective: 3 more" in message and "good: 1 more" in message
    assert list_versions(studio, TOOL) == [] and _artifact_folders(studio) == []


def test_only_one_class_points_to_anomaly_detection(studio: Studio, elpv_subset: Path, tmp_path: Path) -> None:
    create_tool(studio, TOOL, ["good", "defective"], actor=SYSTEM)
    import_path(studio, TOOL, _copy_cells(elpv_subset, tmp_path / "good-only", good=8, defective=0), actor=SYSTEM)
    with pytest.raises(InvalidInputError, match="anomaly") as caught:
        train(studio, TOOL, actor=SYSTEM)
    assert "two classes" in str(caught.value)
    assert list_versions(studio, TOOL) == []


def test_empty_tool_is_refused(studio: Studio) -> None:
    create_tool(studio, TOOL, ["good", "defective"], actor=SYSTEM)
    with pytest.raises(InvalidInputError, match="two classes"):
        train(studio, TOOL, actor=SYSTEM)


# --- damaged stored samples --------------------------------------------------------------------------
def _small_tool(studio: Studio, elpv_subset: Path, folder: Path) -> dict[str, list[tuple[int, str]]]:
    """Tool ``cells`` with 6 + 6 committed cells; returns (sample id, image key) per label."""
    create_tool(studio, TOOL, ["good", "defective"], actor=SYSTEM)
    import_path(studio, TOOL, _copy_cells(elpv_subset, folder, good=6, defective=6), actor=SYSTEM)
    with studio.transaction() as session:
        tool = repo.get_tool(session, TOOL)
        rows = sorted((s.id, s.image_key, s.label) for s in repo.list_samples(session, tool.id))
    return {label: [(i, key) for i, key, lab in rows if lab == label] for label in ("good", "defective")}


def test_damaged_stored_samples_are_skipped_and_training_succeeds(
        studio: Studio, elpv_subset: Path, tmp_path: Path) -> None:
    samples = _small_tool(studio, elpv_subset, tmp_path / "cells")
    (garbage_id, garbage_key), (missing_id, missing_key) = samples["good"][0], samples["defective"][0]
    studio.images.path(garbage_key).write_bytes(b"\x89PNG\r\n\x1a\n this is not an image any more")
    studio.images.path(missing_key).unlink()

    result = train(studio, TOOL, actor=SYSTEM)

    assert result.n_samples == 10  # 5 + 5 left: still enough
    assert sorted(name for name, _ in result.skipped) == sorted([f"sample {garbage_id}", f"sample {missing_id}"])
    reasons = dict(result.skipped)
    assert "damaged" in reasons[f"sample {garbage_id}"] or "not an image" in reasons[f"sample {garbage_id}"]
    assert reasons[f"sample {missing_id}"]
    assert {"sample": f"sample {garbage_id}", "reason": reasons[f"sample {garbage_id}"]} in result.as_dict()["skipped"]
    assert get_tool(studio, TOOL).active_versions["classifier"] == result.version_id
    assert load_classifier(studio.settings.models_dir / TOOL / _artifact_folders(studio)[0]).classes_ == [
        "defective", "good"]


def test_damaged_samples_do_not_count_towards_the_minimum(studio: Studio, elpv_subset: Path, tmp_path: Path) -> None:
    samples = _small_tool(studio, elpv_subset, tmp_path / "cells")
    for _, key in samples["defective"][:2]:
        studio.images.path(key).write_bytes(b"garbage")
    with pytest.raises(InvalidInputError, match="defective: 1 more"):
        train(studio, TOOL, actor=SYSTEM)
    assert list_versions(studio, TOOL) == []


def test_cancel_while_saving_removes_the_new_artifact_and_retraining_retires_v1(
        studio: Studio, elpv_subset: Path, tmp_path: Path) -> None:
    _small_tool(studio, elpv_subset, tmp_path / "cells")
    first = train(studio, TOOL, actor=SYSTEM)
    folders = _artifact_folders(studio)
    assert len(folders) == 1

    cancel = threading.Event()
    seen: list[str] = []

    def progress(stage: str, fraction: float) -> None:
        seen.append(stage)
        if stage == "saving":  # the artifact folder is written by now; the version row is not
            cancel.set()

    with pytest.raises(TrainingCancelledError):
        train(studio, TOOL, progress=progress, cancel=cancel, actor=SYSTEM)
    assert "fit" in seen and seen[-1] == "saving"
    _unchanged(studio, first.version_id, folders)

    second = train(studio, TOOL, seed=1, actor=SYSTEM)
    assert [(v.id, v.status) for v in list_versions(studio, TOOL)] == [
        (second.version_id, "active"), (first.version_id, "retired")]
    assert get_tool(studio, TOOL).active_versions["classifier"] == second.version_id
    assert len(_artifact_folders(studio)) == 2


# --- what a classifier version stores, and how inference uses it -----------------------------------
def test_version_stores_calibration_reference_scores_and_mistakes_by_sample_id(trained) -> None:
    studio, result, _ = trained
    with studio.transaction() as session:
        metrics = dict(repo.get_model_version(session, result.version_id).metrics)
        tool = repo.get_tool(session, TOOL)
        labels = {s.id: s.label for s in repo.list_samples(session, tool.id)}
    model = classifier_of(studio, TOOL).model
    assert metrics["calibration"] == {"threshold": model.threshold_, "review_band": model.review_band_}
    assert metrics["class_counts"] == {"defective": 20, "good": 20}
    reference = metrics["reference_scores"]  # out-of-fold defect scores of the 20 good cells
    assert len(reference) == 20 and all(0.0 <= s <= 1.0 for s in reference)
    # a good cell is recalled exactly when its out-of-fold score is at or below the threshold
    recalled = np.mean([s <= model.threshold_ for s in reference])
    assert metrics["validation"]["recall"]["good"] == pytest.approx(recalled)
    mistakes = metrics["validation"]["misclassified_samples"]
    assert len(mistakes) == len(metrics["validation"]["misclassified"])
    for mistake in mistakes:
        assert labels[mistake["sample_id"]] == mistake["label"]  # a real sample of the tool, its true label
        wrong_side = (mistake["score"] > model.threshold_) != (mistake["label"] == "defective")
        assert wrong_side


def test_inference_uses_the_calibrated_threshold_until_the_user_moves_it(trained) -> None:
    studio, result, _ = trained
    model = classifier_of(studio, TOOL)
    assert (model.threshold, model.review_band) == (model.model.threshold_, model.model.review_band_)
    change_settings(studio, TOOL, SYSTEM, {"threshold.classifier": 0.9, "review_band.classifier": 0.05})
    try:
        moved = classifier_of(studio, TOOL)
        assert (moved.threshold, moved.review_band) == (0.9, 0.05)
    finally:
        change_settings(studio, TOOL, SYSTEM, {"threshold.classifier": None, "review_band.classifier": None})
    assert classifier_of(studio, TOOL).threshold == model.model.threshold_


def test_training_job_in_a_thread_reports_progress_and_cancel_keeps_the_model(trained) -> None:
    from core.training_job import TrainingJob

    studio, result, _ = trained
    folders = _artifact_folders(studio)
    job = TrainingJob(studio, TOOL, "fast", actor=SYSTEM)
    seen: list[float] = []
    original = job._progress

    def progress(stage: str, fraction: float) -> None:
        original(stage, fraction)
        seen.append(job.progress)
        if stage == "validation":
            job.cancel()

    job._progress = progress  # observe the job's own progress reports
    job.start()
    assert job.wait(timeout=300)
    assert job.cancelled and job.result is None and "unchanged" in job.error
    assert seen == sorted(seen) and 0.0 <= seen[0] and seen[-1] < 1.0
    _unchanged(studio, result.version_id, folders)
