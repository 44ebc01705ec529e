"""Issue 16, item 5: pixel-identical training images (no variation among the goods) must not crash the
discriminant projection (Cholesky of a singular within-class moment) nor the training that uses it."""

from __future__ import annotations

import numpy as np
import torch

from models.anomaly import PatchCoreDetector
from models.classifier import FewShotClassifier
from models.projection import discriminant_projection


def test_identical_patches_give_a_finite_projection() -> None:
    patches = torch.randn(1, 8, 4, 4).repeat(6, 1, 1, 1)  # every image the same
    is_good = torch.tensor([True] * 3 + [False] * 3)
    projection = discriminant_projection(patches, is_good, dims=4, shrinkage=0.1, top=3)
    assert projection.shape == (8, 4) and torch.isfinite(projection).all()


def test_the_floor_does_not_change_a_projection_of_varied_goods() -> None:
    generator = torch.Generator().manual_seed(0)
    patches = torch.randn(12, 6, 3, 3, generator=generator)
    is_good = torch.tensor([True] * 8 + [False] * 4)
    projection = discriminant_projection(patches, is_good, dims=3, shrinkage=0.2, top=2)
    assert torch.isfinite(projection).all() and projection.abs().max() < 1e3


def test_training_on_pixel_identical_images_works() -> None:
    rng = np.random.default_rng(0)
    good, bad = (rng.integers(0, 256, (64, 64, 3), dtype=np.uint8) for _ in range(2))
    model = FewShotClassifier(profile="fast", good_class="good").fit([good] * 6 + [bad] * 6, ["good"] * 6 + ["bad"] * 6)
    probabilities = model.predict_proba([good, bad])
    assert np.isfinite(probabilities).all()
    assert model.classes_[int(np.argmax(probabilities[0]))] == "good"
    detector = PatchCoreDetector(profile="fast").fit([good] * 6)
    assert np.isfinite(detector.score_samples([good, bad])).all()
