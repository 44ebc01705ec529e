"""``predict_proba_and_heatmap``: the same probabilities as ``predict_proba`` and a defect map (CAM)
from the same forward pass, on real ELPV cells with a really trained classifier."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.stats import spearmanr

import torch

from models.backbones.registry import get_backbone
from models.classifier import FrozenFeatureClassifier
from models.classifier.estimator import NotFittedError
from models.preprocess import to_batch

ELPV = Path(__file__).resolve().parents[1] / "data" / "elpv"


def _cells(label: str) -> list[np.ndarray]:
    return [np.asarray(Image.open(p).convert("RGB")) for p in sorted((ELPV / label).glob("*.png"))]


@pytest.fixture(scope="module")
def fitted() -> tuple[FrozenFeatureClassifier, list[np.ndarray], list[np.ndarray]]:
    good, bad = _cells("good"), _cells("defective")
    train_good, train_bad = good[:14], bad[:14]
    model = FrozenFeatureClassifier().fit(train_good + train_bad, ["good"] * 14 + ["defective"] * 14)
    return model, good[14:], bad[14:]


def test_probabilities_match_predict_proba_and_maps_are_in_range(fitted) -> None:  # noqa: ANN001
    model, good, bad = fitted
    images = good + bad
    probabilities, heatmaps = model.predict_proba_and_heatmap(images)
    assert probabilities.shape == (len(images), 2)
    assert np.allclose(probabilities, model.predict_proba(images), atol=1e-6)
    assert heatmaps.shape == (len(images), 7, 7) and heatmaps.dtype == np.float32  # lite0 at 224 px: 7 x 7
    assert heatmaps.min() >= 0.0 and heatmaps.max() <= 1.0


def test_the_map_is_the_local_evidence_behind_the_score(fitted) -> None:  # noqa: ANN001
    """The mean local logit is the image's logit of defective vs good (CAM identity), so the maps
    are brighter where the model sees a defect."""
    model, good, bad = fitted
    probabilities, heatmaps = model.predict_proba_and_heatmap(good + bad)
    features = get_backbone("efficientnet-lite0").forward_stages(to_batch(good + bad, 224))[-1]
    with torch.inference_mode():
        local = model._defect_local_logits(features, torch.from_numpy(probabilities)).double()
    assert np.allclose(torch.sigmoid(local).numpy(), heatmaps, atol=1e-5)
    defective = model.classes_.index("defective")
    image_logit = np.log(probabilities[:, defective].astype(np.float64) / probabilities[:, 1 - defective])
    agree = np.abs(image_logit) < 15  # float32 softmax is exact enough to take its log-ratio
    assert agree.sum() >= 6
    assert np.allclose(local.mean(dim=(1, 2)).numpy()[agree], image_logit[agree], atol=1e-2)
    brightness = heatmaps.mean(axis=(1, 2))  # brighter maps where the model sees a defect
    assert spearmanr(brightness, probabilities[:, defective]).statistic > 0.5


def test_a_defect_pasted_into_half_of_a_good_cell_lights_up_that_half(fitted) -> None:  # noqa: ANN001
    model, good, bad = fitted
    probabilities, heatmaps = model.predict_proba_and_heatmap([good[0]])
    composite = good[0].copy()
    composite[:, 150:] = bad[0][:, 150:]  # the right half from a defective cell
    _, mixed = model.predict_proba_and_heatmap([composite])
    assert (mixed[0] - heatmaps[0])[:, 4:].mean() > (mixed[0] - heatmaps[0])[:, :3].mean()


def test_empty_input_and_unfitted_model() -> None:
    with pytest.raises(NotFittedError):
        FrozenFeatureClassifier().predict_proba_and_heatmap([np.zeros((8, 8, 3), np.uint8)])
