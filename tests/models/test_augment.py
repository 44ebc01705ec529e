"""models.augment (light, position, motion and noise on images; the test-time views) and models.tta
(any method's judgement averaged over those views), on real ELPV cells and real small models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from models import augment, augment_names
from models.anomaly import PatchCoreDetector
from models.classifier import FewShotClassifier
from models.registry import build
from models.tta import judge_views


def _cells(folder: Path, n: int) -> list[np.ndarray]:
    return [np.repeat(np.asarray(Image.open(p).convert("L"))[:, :, None], 3, axis=2)
            for p in sorted(folder.glob("*.png"))[:n]]


def _dot() -> np.ndarray:
    image = np.zeros((41, 41, 3), np.uint8)
    image[20, 20] = 210
    return image


def test_identity_settings_leave_the_image_unchanged() -> None:
    image = np.random.default_rng(0).integers(0, 256, (32, 48, 3), dtype=np.uint8)
    for changed in (augment.brightness(image, 1.0), augment.contrast(image, 1.0), augment.gamma(image, 1.0),
                    augment.move(image), augment.motion_blur(image, 1)):
        assert changed.shape == image.shape and changed.dtype == np.uint8
        assert np.array_equal(changed, image)


def test_light_changes_go_the_right_way() -> None:
    image = np.full((8, 8, 3), 100, np.uint8)
    assert augment.brightness(image, 1.25).mean() == 125 and augment.brightness(image, 0.75).mean() == 75
    assert augment.gamma(image, 0.8).mean() > 100 > augment.gamma(image, 1.25).mean()


def test_shift_moves_the_part_and_motion_blur_smears_it_along_one_line() -> None:
    moved = augment.move(_dot(), dx=0.1)  # 10 % of 41 px -> 4 px to the right
    assert np.argwhere(moved[:, :, 0] == moved[:, :, 0].max()).tolist() == [[20, 24]]
    smeared = augment.motion_blur(_dot(), 7)[:, :, 0]
    assert np.flatnonzero(smeared[20]).tolist() == list(range(17, 24)) and smeared.sum() == pytest.approx(210, abs=7)
    assert not smeared[np.arange(41) != 20].any()  # horizontal only
    vertical = augment.motion_blur(_dot(), 7, 90.0)[:, :, 0]
    assert np.flatnonzero(vertical[:, 20]).tolist() == list(range(17, 24))


def test_noise_is_seeded_and_about_the_asked_strength() -> None:
    image = np.full((64, 64, 3), 128, np.uint8)
    a, b = augment.noise(image, 4.0, seed=3), augment.noise(image, 4.0, seed=3)
    assert np.array_equal(a, b) and 3.0 < a.astype(float).std() < 5.0


def test_augmented_copies_are_seeded_varied_and_in_range(elpv_subset: Path) -> None:
    cells = _cells(elpv_subset / "good", 2)
    copies = augment.augmented_copies(cells, 3, seed=1)
    assert len(copies) == 6 and all(c.shape == cells[0].shape and c.dtype == np.uint8 for c in copies)
    assert all(np.array_equal(x, y) for x, y in zip(copies, augment.augmented_copies(cells, 3, seed=1), strict=True))
    assert not np.array_equal(copies[0], copies[1])
    assert all(abs(c.astype(float).mean() - cells[i // 3].mean()) < 0.4 * cells[i // 3].mean()
               for i, c in enumerate(copies))


def test_tta_names_are_checked_and_put_in_order() -> None:
    assert augment_names.check_tta(["light", "mirror", "light"]) == ("mirror", "light")
    with pytest.raises(ValueError, match="unknown test-time variants blur"):
        augment_names.check_tta(["blur"])
    # every name the settings accept (models.augment_names, torch-free) has its views, in the same order
    assert (augment_names.MIRROR, *augment.TTA_VARIANTS) == augment_names.TTA_NAMES


@pytest.fixture(scope="module")
def classifier(elpv_subset: Path) -> FewShotClassifier:
    good, bad = _cells(elpv_subset / "good", 6), _cells(elpv_subset / "defective", 6)
    model = FewShotClassifier(profile="fast", augment_copies=1, cv_folds=3)
    return model.fit(good + bad, ["good"] * 6 + ["defective"] * 6)


@pytest.mark.slow
def test_augmented_copies_fill_the_memory_but_only_the_images_calibrate(classifier, tmp_path: Path) -> None:
    assert classifier.head_.memory.shape[1] == 12  # 6 goods and one copy of each
    report = classifier.training_report()
    assert report["n_samples"] == 12 and len(classifier.reference_scores_) == 6
    assert report["class_counts"] == {"defective": 6, "good": 6}
    classifier.save(tmp_path / "model")
    assert FewShotClassifier.load(tmp_path / "model").augment_copies == 1


@pytest.mark.slow
def test_the_line_variants_of_every_image_are_learned_from_but_only_the_images_calibrate(elpv_subset: Path) -> None:
    images = _cells(elpv_subset / "good", 4) + _cells(elpv_subset / "defective", 4)
    labels = ["good"] * 4 + ["defective"] * 4
    model = FewShotClassifier(profile="fast", augment="line", cv_folds=2).fit(images, labels)
    assert model.head_.memory.shape[1] == 4 * (1 + len(augment.LINE_VARIANTS))  # the goods and their variants
    assert len(model.reference_scores_) == 4 and model.training_report()["class_counts"] == {"defective": 4, "good": 4}
    with pytest.raises(ValueError, match="unknown augmentation 'wild'"):
        FewShotClassifier(profile="fast", augment="wild").fit(images, labels)


@pytest.mark.slow
def test_judge_views_averages_the_views_and_brings_maps_back(classifier, elpv_subset: Path) -> None:
    cells = _cells(elpv_subset / "defective", 8)[6:]
    plain = classifier.judge(cells)
    assert [j.score for j in judge_views(classifier, cells)] == [j.score for j in plain]
    mirror = judge_views(classifier, cells, ["mirror"])
    assert [j.score for j in mirror] == pytest.approx([j.score for j in classifier.judge(cells, tta=True)])
    views = augment.TTA_VARIANTS["shift"]
    shifted = [classifier.judge([view.forward(c) for c in cells]) for view in views]
    both = judge_views(classifier, cells, ["shift"])
    for i, judged in enumerate(both):
        expected = np.mean([plain[i].score] + [s[i].score for s in shifted])
        assert judged.score == pytest.approx(expected, abs=1e-5)
        assert judged.map.shape == plain[i].map.shape and judged.label == "defective"
        assert sum(judged.probabilities.values()) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.slow
def test_an_anomaly_model_gets_its_regions_from_the_averaged_map(elpv_subset: Path) -> None:
    goods = _cells(elpv_subset / "good", 6)
    model = PatchCoreDetector(profile="fast", synthetic_images=0).fit(goods)
    cell = _cells(elpv_subset / "defective", 1)
    judged = judge_views(model, cell, ["mirror", "light"])[0]
    assert judged.map.shape == cell[0].shape[:2] and judged.raw_map.shape == cell[0].shape[:2]
    assert all(r.peak >= model.threshold_ for r in judged.regions)
    assert bool(judged.regions) == bool((judged.map >= model.threshold_).any())


def test_a_tools_augment_setting_reaches_both_methods() -> None:
    assert build("classifier", profile="fast", good_class="good", augment=True).augment == "line"
    assert build("classifier", profile="fast", good_class="good").augment == "none"
    assert build("anomaly", profile="fast", good_class="good", augment=True).augment == "line"
    assert build("anomaly", profile="fast", good_class="good").augment == "none"


@pytest.mark.slow
def test_the_line_memory_keeps_moved_goods_below_the_threshold(elpv_subset: Path, tmp_path: Path) -> None:
    """Good parts shifted by 5 % and 4 % and turned by 2 degrees (black where the fixture comes into view)
    look anomalous to a memory of aligned goods only; the ``line`` memory holds such goods."""
    goods = _cells(elpv_subset / "good", 8)
    moved = [augment.move(cell, 0.05, -0.04, 2.0) for cell in goods[6:]]
    plain = PatchCoreDetector(profile="fast", synthetic_images=0).fit(goods[:6])
    line = PatchCoreDetector(profile="fast", synthetic_images=0, augment="line").fit(goods[:6])
    assert line.goods_.variants == 1 + len(augment.LINE_VARIANTS) and line.n_images_ == 6
    assert len(line.reference_scores_) == 6  # only the goods themselves calibrate
    assert (plain.score_samples(moved) > plain.threshold_).any()
    assert (line.score_samples(moved) < plain.threshold_).all()
    line.save(tmp_path / "line")
    again = PatchCoreDetector.load(tmp_path / "line")
    assert again.goods_.variants == line.goods_.variants
    assert again.score_samples(moved) == pytest.approx(line.score_samples(moved))
