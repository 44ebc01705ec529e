"""Class activation map of the frozen-feature classifier (Zhou et al., 2016, "Learning Deep Features
for Discriminative Localization").

The head is linear on globally averaged features, so a logit difference splits exactly over the
feature map's cells: ``logit_a - logit_b = mean_hw sum_d (W_ad - W_bd) / std_d * F_d(h, w) + const``.
The per-cell term is the map: where the image looks like ``positive`` rather than ``negative``.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from models.backbones.registry import get_backbone
from models.classifier.estimator import FrozenFeatureClassifier
from models.preprocess import to_batch
from models.profiles import get_profile


def class_activation_map(model: FrozenFeatureClassifier, rgb: np.ndarray, positive: str, negative: str) -> np.ndarray:
    """A map ``(H, W)`` in [0, 1] of the image ``(H, W, 3)``: 1 where it argues most for ``positive``
    over ``negative`` (two of ``model.classes_``), 0 where it argues least."""
    model._check_fitted()
    profile = get_profile(model.profile)
    weight = model.head_.linear.weight  # (K, D)
    direction = (weight[model.classes_.index(positive)] - weight[model.classes_.index(negative)])
    direction = direction / model.head_.feature_std  # (D,)
    with torch.inference_mode():
        features = get_backbone(profile.backbone).forward_stages(to_batch([rgb], profile.input_size))[-1][0]
        cells = torch.einsum("d,dhw->hw", direction, features).numpy()  # (h, w)
    cells = cells - cells.min()
    cells = cells / cells.max() if cells.max() > 0 else cells
    return cv2.resize(cells.astype(np.float32), (rgb.shape[1], rgb.shape[0]), interpolation=cv2.INTER_CUBIC).clip(0, 1)
