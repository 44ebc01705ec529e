"""bench/robust_features.py's camera frame: without correction the ROI crop of the frame is the perturbed cell
the benchmark always judged (up to interpolation on the moved part's outline), and the product's position
correction, with a reference built from unmoved goods, brings a moved part back into the ROI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench import robust_features as rf
from models.registration import PartLocator

ELPV = Path(__file__).resolve().parent.parent / "data" / "elpv"


def _goods() -> list[np.ndarray]:
    return [np.asarray(Image.open(p).convert("L")) for p in sorted((ELPV / "good").glob("*.png"))]


@pytest.mark.parametrize("perturbation", list(rf.PERTURBATIONS))
def test_uncorrected_roi_is_the_perturbed_cell(perturbation: str) -> None:
    for cell, gray in enumerate(_goods()[:3]):
        frame, (x0, y0, x1, y1) = rf.frame(gray, cell, perturbation)
        side = gray.shape[0]
        assert frame.shape == (round(side * (1 + 2 * rf.PAD)),) * 2 + (3,) and (x1 - x0, y1 - y0) == gray.shape[::-1]
        roi = frame[y0:y1, x0:x1].astype(int)
        expected = rf.PERTURBATIONS[perturbation](rf.rgb(gray), cell).astype(int)
        difference = np.abs(roi - expected)
        if perturbation == "position":  # bilinear fill differs along the moved cell's outline only
            assert difference.mean() < 0.3 and (difference > 2).mean() < 0.01
        else:
            assert not difference.any()


def test_correction_brings_a_moved_part_back() -> None:
    goods = _goods()
    locator = PartLocator.from_goods([rf.rgb(gray) for gray in goods[:10]])
    corrected, uncorrected = [], []
    for cell, gray in enumerate(goods[10:14]):
        unmoved, box = rf.frame(gray, cell, "none")
        want = unmoved[box[1]:box[3], box[0]:box[2]].astype(int)
        moved, same_box = rf.frame(gray, cell, "position")
        assert same_box == box
        uncorrected.append(np.abs(moved[box[1]:box[3], box[0]:box[2]].astype(int) - want).mean())
        corrected.append(np.abs(locator.cut(moved, box).astype(int) - want).mean())
    assert min(uncorrected) > 10
    assert np.mean(corrected) < 0.4 * np.mean(uncorrected)
