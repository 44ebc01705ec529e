"""The anomaly detector trained on real good ELPV cells: synthetic defects score higher and the map
peaks on them; fitted state, regions, and a bit-exact artifact round trip without pickle."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from models.anomaly import PatchCoreDetector
from models.artifacts import META_FILE, WEIGHTS_FILE, ArtifactError
from models.base import NotFittedError
from models.preprocess import standardise_intensity

TRAIN_GOODS = 15


def _rgb(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


@pytest.fixture(scope="module")
def goods(elpv_subset: Path) -> list[np.ndarray]:
    return [_rgb(p) for p in sorted((elpv_subset / "good").glob("*.png"))]


@pytest.fixture(scope="module")
def detector(goods: list[np.ndarray]) -> PatchCoreDetector:
    return PatchCoreDetector(profile="fast").fit(goods[:TRAIN_GOODS])


def _scratch(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A dark crack-like line; returns the image and the mask of the drawn pixels."""
    out, mask = image.copy(), np.zeros(image.shape[:2], np.uint8)
    for target, value in ((out, (15, 15, 15)), (mask, 1)):
        cv2.line(target, (70, 60), (200, 150), value, 3)
    return out, mask.astype(bool)


def _blotch(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A dark filled ellipse, like an inactive area; returns the image and its mask."""
    out, mask = image.copy(), np.zeros(image.shape[:2], np.uint8)
    for target, value in ((out, (10, 10, 10)), (mask, 1)):
        cv2.ellipse(target, (190, 200), (35, 22), 30, 0, 360, value, -1)
    return out, mask.astype(bool)


def test_fit_learns_a_bank_a_calibration_and_reference_scores(detector: PatchCoreDetector) -> None:
    bank = detector.model_.memory_bank
    assert bank.shape == (14, 14, TRAIN_GOODS, 32)  # per grid position, projected to 32 directions
    assert detector.model_.projection.shape == (80 + 112, 32)  # from lite0 stages 3 and 4
    assert torch.isfinite(bank).all()
    scale = detector.model_.position_scale
    assert scale.shape == (14, 14) and (scale > 0).all() and scale.max() > scale.min()
    assert len(detector.reference_scores_) == TRAIN_GOODS and detector.n_images_ == TRAIN_GOODS
    assert all(0.0 < s < 1.0 for s in detector.reference_scores_)
    assert np.median(detector.reference_scores_) == pytest.approx(1 / (1 + np.exp(2.0)), abs=1e-6)


@pytest.mark.parametrize("draw", [_scratch, _blotch])
def test_a_synthetic_defect_scores_higher_and_the_map_peaks_on_it(detector, goods, draw) -> None:
    clean = goods[TRAIN_GOODS:]
    clean_scores = detector.score_samples(clean)
    for image in clean:
        defective, mask = draw(image)
        result = detector.predict([defective])[0]
        assert result.score > detector.score_samples([image])[0]
        assert result.score > clean_scores.max()
        assert result.map.shape == image.shape[:2] and result.map.dtype == np.float32
        assert result.raw_map.shape == result.map.shape
        peak = np.unravel_index(int(result.raw_map.argmax()), result.map.shape)
        near = cv2.dilate(mask.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)  # within 4 px
        assert near[peak], f"map peaks at {peak}, outside the drawn defect"


def test_regions_above_the_threshold_cover_the_defect(detector, goods) -> None:
    defective, mask = _blotch(goods[TRAIN_GOODS])
    result = detector.predict([defective], threshold=0.5)[0]
    assert result.score > 0.5 and result.regions
    x, y, w, h = result.regions[0].box
    ys, xs = np.nonzero(mask)
    centre = (xs.mean(), ys.mean())
    assert x <= centre[0] <= x + w and y <= centre[1] <= y + h
    assert result.regions[0].peak == pytest.approx(float(result.map[y : y + h, x : x + w].max()), abs=1e-6)
    above_peak = float(result.map.max()) + 1e-6
    assert detector.predict([defective], threshold=above_peak)[0].regions == []


def test_the_map_has_the_resolution_of_each_image(detector, goods) -> None:
    wide = cv2.resize(goods[TRAIN_GOODS], (400, 250))
    assert detector.predict([wide])[0].map.shape == (250, 400)


def test_predicting_before_fitting_is_a_clear_error(goods) -> None:
    with pytest.raises(NotFittedError, match="not trained yet"):
        PatchCoreDetector().predict(goods[:1])
    with pytest.raises(ValueError, match="at least three good images"):
        PatchCoreDetector().fit(goods[:1])


def test_artifact_round_trip_is_bit_exact_without_pickle(detector, goods, tmp_path: Path) -> None:
    folder = tmp_path / "anomaly"
    detector.save(folder)
    assert sorted(p.name for p in folder.iterdir()) == sorted([META_FILE, WEIGHTS_FILE])
    assert json.loads((folder / META_FILE).read_text())["method"] == "anomaly"
    loaded = PatchCoreDetector.load(folder)
    assert torch.equal(loaded.model_.memory_bank, detector.model_.memory_bank)
    assert torch.equal(loaded.model_.position_scale, detector.model_.position_scale)
    assert loaded.calibration_ == detector.calibration_
    assert loaded.get_params() == detector.get_params()
    image = _scratch(goods[-1])[0]
    before, after = detector.predict([image])[0], loaded.predict([image])[0]
    assert after.score == before.score and np.array_equal(after.map, before.map)


def test_a_damaged_or_foreign_artifact_is_refused(detector, tmp_path: Path) -> None:
    folder = tmp_path / "anomaly"
    detector.save(folder)
    meta = json.loads((folder / META_FILE).read_text())
    meta["kind"] = "classifier"
    (folder / META_FILE).write_text(json.dumps(meta))
    with pytest.raises(ArtifactError, match="usable anomaly model"):
        PatchCoreDetector.load(folder)
    for older in (1, 2):  # the global-memory layout; the positional one scored without the mirror view
        meta.update(kind="anomaly", format=older)
        (folder / META_FILE).write_text(json.dumps(meta))
        with pytest.raises(ArtifactError, match="older format.*retrain"):
            PatchCoreDetector.load(folder)
    (folder / WEIGHTS_FILE).write_bytes(b"\x80\x04not safetensors")  # a pickle header is never unpickled
    with pytest.raises(ArtifactError, match="damaged"):
        PatchCoreDetector.load(folder)


def test_the_memory_keeps_a_subset_of_images_within_its_budget(goods) -> None:
    per_image_mb = 14 * 14 * 32 * 4 / 2**20  # 32 projected directions
    small = PatchCoreDetector(profile="fast", bank_mb=4.5 * per_image_mb).fit(goods[:8])
    assert small.model_.memory_bank.shape[2] == 4 and small.n_images_ == 8
    assert len(small.reference_scores_) == 8


def test_intensity_standardisation_removes_exposure_differences(goods) -> None:
    image = goods[0]
    darker = (image.astype(np.float32) * 0.6).astype(np.uint8)
    a, b = standardise_intensity(image), standardise_intensity(darker)
    assert abs(float(a.mean()) - 128) < 2 and abs(float(a.std()) - 50) < 2
    assert np.abs(a.astype(int) - b.astype(int)).mean() < 3


def test_flip_averaged_scores_barely_change_when_the_part_is_mirrored(detector, goods) -> None:
    image = _scratch(goods[TRAIN_GOODS])[0]
    mirror = np.ascontiguousarray(image[:, ::-1])

    def gap(model: PatchCoreDetector) -> float:  # only the position scale is not mirrored with the image
        first, second = (model.predict([x])[0].raw_score for x in (image, mirror))
        return abs(first - second) / first

    flipping = PatchCoreDetector(profile="fast", test_flip=True).fit(goods[:TRAIN_GOODS])
    assert not detector.test_flip  # the default scores the image alone
    assert gap(flipping) < 0.02
    mirrored_mask = np.ascontiguousarray(_scratch(goods[TRAIN_GOODS])[1][:, ::-1]).astype(np.uint8)
    peak = np.unravel_index(int(flipping.predict([mirror])[0].raw_map.argmax()), image.shape[:2])
    assert cv2.dilate(mirrored_mask, np.ones((9, 9), np.uint8))[peak], "the map does not peak on the mirrored defect"


def test_position_shrink_pulls_each_position_scale_towards_the_mean(goods) -> None:
    own = PatchCoreDetector(position_shrink=0.0).fit(goods[:8]).model_.position_scale
    half = PatchCoreDetector(position_shrink=0.5).fit(goods[:8]).model_.position_scale
    flat = PatchCoreDetector(position_shrink=1.0).fit(goods[:8]).model_.position_scale
    assert torch.allclose(half, (own + own.mean()) / 2, rtol=1e-5)
    assert torch.allclose(flat, torch.full_like(flat, float(own.mean())), rtol=1e-5)
    with pytest.raises(ValueError, match="position_shrink"):
        PatchCoreDetector(position_shrink=1.5).fit(goods[:8])


def test_unseen_goods_stay_below_the_threshold(detector, goods) -> None:
    """The threshold comes from out-of-fold scores (projection included), so it holds for new goods:
    calibrated in-sample, the projection tuned to the training goods flagged most unseen goods."""
    unseen = detector.score_samples(goods[TRAIN_GOODS:])
    assert (unseen > 0.5).sum() <= 1, unseen
    assert np.median(unseen) < 0.5
