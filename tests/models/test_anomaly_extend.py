"""Extending a fitted anomaly model with new goods (``PatchCoreDetector.extend``): the same learning as a
full fit on all the goods from the stored features (identical without synthetic defects, nearly so with
them), kept across save and load, and the original untouched."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from safetensors.torch import load_file, save_file
from sklearn.metrics import roc_auc_score

from models.anomaly import PatchCoreDetector
from models.artifacts import WEIGHTS_FILE
from models.base import NotFittedError, TrainingSetError

PARAMS = {"profile": "fast", "synthetic_images": 30}  # few synthetic defects: a lean test


def _rgb(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


@pytest.fixture(scope="module")
def cells(elpv_subset: Path) -> tuple[list[np.ndarray], list[np.ndarray]]:
    return ([_rgb(p) for p in sorted((elpv_subset / "good").glob("*.png"))],
            [_rgb(p) for p in sorted((elpv_subset / "defective").glob("*.png"))])


def test_extend_matches_a_full_fit_on_all_goods(cells, tmp_path: Path) -> None:
    goods, defects = cells
    base = PatchCoreDetector(**PARAMS).fit(goods[:6])
    before = base.model_.memory_bank.clone()
    base.save(tmp_path / "base")
    extended = PatchCoreDetector.load(tmp_path / "base").extend(goods[6:10] + defects[:2],
                                                                ["good"] * 4 + ["defective"] * 2)
    full = PatchCoreDetector(**PARAMS).fit(goods[:10])

    assert torch_equal(base.model_.memory_bank, before) and base.n_images_ == 6  # the original is untouched
    assert extended.model_.memory_bank.shape == full.model_.memory_bank.shape  # (h, w, 10, D): same memory rule
    assert extended.n_images_ == 10 and extended.ignored_ == 2 and len(extended.reference_scores_) == 10
    assert extended.training_report()["validation"]["n_good"] == 10
    test = goods[10:] + defects[2:]
    truth = [0] * len(goods[10:]) + [1] * len(defects[2:])
    scores_extended, scores_full = extended.score_samples(test), full.score_samples(test)
    assert np.corrcoef(scores_extended, scores_full)[0, 1] > 0.95
    assert abs(roc_auc_score(truth, scores_extended) - roc_auc_score(truth, scores_full)) <= 0.03
    # the projection is relearned from all goods, the threshold recalibrated out of fold as fit does
    assert extended.calibration_.threshold == pytest.approx(full.calibration_.threshold, rel=0.15)
    again = extended.extend(goods[10:12])  # an extended model extends again
    assert again.n_images_ == 12 and again.goods_.raw.shape[0] == 12


def test_without_synthetic_defects_extend_is_a_full_fit(cells) -> None:
    goods, _ = cells
    params = {"profile": "fast", "synthetic_images": 0}
    extended = PatchCoreDetector(**params).fit(goods[:5]).extend(goods[5:9])
    full = PatchCoreDetector(**params).fit(goods[:9])
    assert np.allclose(extended.score_samples(goods[9:]), full.score_samples(goods[9:]), rtol=1e-4, atol=1e-5)
    assert extended.calibration_.threshold == pytest.approx(full.calibration_.threshold, rel=1e-4)


def test_extend_refuses_nothing_new_an_unfitted_model_and_one_saved_without_features(cells, tmp_path) -> None:
    goods, defects = cells
    with pytest.raises(NotFittedError):
        PatchCoreDetector(profile="fast").extend(goods[:2])
    base = PatchCoreDetector(profile="fast", synthetic_images=0).fit(goods[:4])
    with pytest.raises(TrainingSetError, match="no new good image"):
        base.extend(defects[:2], ["defective", "defective"])
    folder = tmp_path / "legacy"
    base.save(folder)  # a version saved before extend existed: no goods' features in the artifact
    tensors = load_file(folder / WEIGHTS_FILE)
    save_file({k: v for k, v in tensors.items() if not k.startswith("goods/")}, folder / WEIGHTS_FILE)
    legacy = PatchCoreDetector.load(folder)
    assert legacy.score_samples(goods[4:6]).shape == (2,)  # still predicts
    with pytest.raises(TrainingSetError, match="retrain it once"):
        legacy.extend(goods[4:6])


def torch_equal(a, b) -> bool:  # noqa: ANN001 - two tensors
    return bool((a == b).all())
