"""Extending a fitted anomaly model with new goods (``PatchCoreDetector.extend``): the same memory rule
and nearly the same scores and threshold as a full fit on all the goods, and the original untouched."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import roc_auc_score

from models.anomaly import PatchCoreDetector
from models.base import NotFittedError, TrainingSetError

PARAMS = {"profile": "fast", "synthetic_images": 30}  # few synthetic defects: a lean test


def _rgb(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


@pytest.fixture(scope="module")
def cells(elpv_subset: Path) -> tuple[list[np.ndarray], list[np.ndarray]]:
    return ([_rgb(p) for p in sorted((elpv_subset / "good").glob("*.png"))],
            [_rgb(p) for p in sorted((elpv_subset / "defective").glob("*.png"))])


def test_extend_matches_a_full_fit_on_all_goods(cells) -> None:
    goods, defects = cells
    base = PatchCoreDetector(**PARAMS).fit(goods[:6])
    before = base.model_.memory_bank.clone()
    extended = base.extend(goods[6:10] + defects[:2], ["good"] * 4 + ["defective"] * 2)
    full = PatchCoreDetector(**PARAMS).fit(goods[:10])

    assert torch_equal(base.model_.memory_bank, before) and base.n_images_ == 6  # the original is untouched
    assert extended.model_.memory_bank.shape == full.model_.memory_bank.shape  # (h, w, 10, D): same memory rule
    assert extended.n_images_ == 10 and extended.ignored_ == 2 and len(extended.reference_scores_) == 10
    assert extended.training_report()["validation"]["n_good"] == 10
    test = goods[10:] + defects[2:]
    truth = [0] * len(goods[10:]) + [1] * len(defects[2:])
    scores_extended, scores_full = extended.score_samples(test), full.score_samples(test)
    assert np.corrcoef(scores_extended, scores_full)[0, 1] > 0.95
    assert abs(roc_auc_score(truth, scores_extended) - roc_auc_score(truth, scores_full)) <= 0.05
    # recalibrated as fit does: the threshold moves from the base's towards the full fit's
    assert extended.calibration_.threshold == pytest.approx(full.calibration_.threshold, rel=0.15)


def test_extend_refuses_nothing_new_and_an_unfitted_model(cells) -> None:
    goods, defects = cells
    with pytest.raises(NotFittedError):
        PatchCoreDetector(profile="fast").extend(goods[:2])
    base = PatchCoreDetector(profile="fast", synthetic_images=0).fit(goods[:4])
    with pytest.raises(TrainingSetError, match="no new good image"):
        base.extend(defects[:2], ["defective", "defective"])


def torch_equal(a, b) -> bool:  # noqa: ANN001 - two tensors
    return bool((a == b).all())
