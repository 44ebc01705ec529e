"""Pixel-level map metrics on maps whose pixel AUROC and PRO can be worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from models.anomaly.metrics import pixel_auroc, pro_curve, pro_score


def _two_regions() -> np.ndarray:
    """One 20 x 20 mask: region A (10 x 10 = 100 px) and region B (2 x 2 = 4 px), apart."""
    mask = np.zeros((20, 20), bool)
    mask[1:11, 1:11] = True
    mask[15:17, 15:17] = True
    return mask


def _background() -> np.ndarray:
    """Distinct values in (0.1, 1) on every pixel, so the FPR grows one pixel at a time."""
    return np.linspace(0.1, 1.0, 400, endpoint=False).reshape(20, 20)[:, ::-1]


def test_a_perfect_map_scores_one() -> None:
    mask = _two_regions()
    perfect = mask.astype(float) + 0.01 * _background()  # every defect pixel above every other
    clean = np.zeros((20, 20), bool)  # a defect-free image adds negatives only
    assert pixel_auroc([perfect, _background()], [mask, clean]) == pytest.approx(1.0)
    assert pro_score([perfect, _background()], [mask, clean]) == pytest.approx(1.0)


def test_an_inverted_map_scores_zero() -> None:
    mask = _two_regions()
    inverted = -(mask.astype(float) + 0.01 * _background())
    assert pixel_auroc([inverted], [mask]) == pytest.approx(0.0)
    assert pro_score([inverted], [mask]) == pytest.approx(0.0)


def test_a_map_covering_one_of_two_regions_gets_half_the_overlap() -> None:
    """A above everything, B below everything: the PRO curve is 0.5 from FPR 0 to 1, so PRO = 0.5,
    although 100 of the 104 defect pixels (96 %) are found: each region counts once, whatever its size."""
    mask = _two_regions()
    score = _background()
    score[1:11, 1:11] = 2.0
    score[15:17, 15:17] = -1.0
    assert pro_score([score], [mask]) == pytest.approx(0.5)
    # pixel AUROC: the 100 A pixels beat all 296 negatives, the 4 B pixels none
    assert pixel_auroc([score], [mask]) == pytest.approx(100 / 104)


def test_the_fpr_limit_and_interpolation() -> None:
    """A constant map: every pixel passes at the one threshold, the curve is (0, 0) -> (1, 1);
    up to FPR 0.3 the area is 0.3 * 0.3 / 2, divided by 0.3: 0.15 (0.5 up to FPR 1)."""
    mask = _two_regions()
    flat = np.full((20, 20), 0.7)
    assert pro_score([flat], [mask]) == pytest.approx(0.15)
    assert pro_score([flat], [mask], max_fpr=1.0) == pytest.approx(0.5)
    assert pixel_auroc([flat], [mask]) == pytest.approx(0.5)
    fpr, pro = pro_curve([flat], [mask])
    assert fpr.tolist() == [0.0, 1.0] and pro.tolist() == [0.0, 1.0]


def test_regions_are_eight_connected_and_counted_over_all_images() -> None:
    """Two diagonal neighbours are one region; a second image's region counts as much as the first's."""
    diagonal = np.zeros((6, 6), bool)
    diagonal[2, 2] = diagonal[3, 3] = True
    found = np.zeros((6, 6))
    found[2, 2] = found[3, 3] = 1.0  # the one region found whole
    square = np.zeros((6, 6), bool)
    square[1:4, 1:4] = True
    missed = -square.astype(float)  # the other image's region ranked below all negatives
    assert pro_score([found], [diagonal]) == pytest.approx(1.0)
    assert pro_score([found, missed], [diagonal, square]) == pytest.approx(0.5)


def test_subsampled_auroc_is_deterministic_and_close() -> None:
    rng = np.random.default_rng(0)
    masks = rng.random((4, 50, 50)) < 0.1
    maps = masks + rng.normal(0, 0.8, masks.shape)
    full = pixel_auroc(maps, masks)
    sub = pixel_auroc(maps, masks, max_pixels=4000, seed=3)
    assert sub == pixel_auroc(maps, masks, max_pixels=4000, seed=3)
    assert sub == pytest.approx(full, abs=0.03)


def test_masks_without_defect_pixels_are_refused() -> None:
    empty = np.zeros((2, 8, 8), bool)
    for metric in (pixel_auroc, pro_score):
        with pytest.raises(ValueError, match="no defect pixel"):
            metric(np.zeros((2, 8, 8)), empty)
    with pytest.raises(ValueError, match="no defect-free pixel"):
        pro_score(np.zeros((1, 8, 8)), np.ones((1, 8, 8), bool))


def test_mismatched_shapes_and_bad_limits_are_refused() -> None:
    with pytest.raises(ValueError, match="one shape"):
        pixel_auroc(np.zeros((2, 8, 8)), _two_regions()[None])
    with pytest.raises(ValueError, match="max_fpr"):
        pro_score([_background()], [_two_regions()], max_fpr=0.0)
