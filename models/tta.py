"""Test-time augmentation over several views of each image, for any inspection method.

The mirror is each method's own (``judge(..., tta=True)``: both views in one batch, and inside an
exported ONNX graph). The variants of ``models.augment.TTA_VARIANTS`` (small shifts, lighter and
darker mid-tones) are extra views judged in the same call: scores, class probabilities and maps
(brought back onto the image) are averaged, and regions are found again on the averaged map.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from models.anomaly.regions import find_regions
from models.augment import TTA_VARIANTS, View
from models.augment_names import MIRROR, check_tta
from models.base import InspectionMethod, Judgement


def _on_image(score_map: np.ndarray | None, view: View, shape: tuple[int, ...]) -> np.ndarray | None:
    """A view's map brought back onto the image and to ``shape``."""
    if score_map is None:
        return None
    back = view.back(score_map) if view.back is not None else score_map
    return back if back.shape == shape else cv2.resize(back, shape[::-1])


def _mean_maps(maps: list[np.ndarray | None]) -> np.ndarray | None:
    return None if maps[0] is None else np.mean(maps, axis=0).astype(np.float32)


def _averaged(model: InspectionMethod, judged: list[Judgement], views: list[View]) -> Judgement:
    first = judged[0]
    probabilities = {name: float(np.mean([j.probabilities.get(name, 0.0) for j in judged]))
                     for name in first.probabilities}
    named = {j.label for j in judged if j.label is not None}
    label = max(named, key=lambda name: probabilities.get(name, 0.0)) if named else None
    maps = [first.map] + [_on_image(j.map, v, first.map.shape) if first.map is not None else None
                          for j, v in zip(judged[1:], views, strict=True)]
    raws = [first.raw_map] + [_on_image(j.raw_map, v, first.raw_map.shape) if first.raw_map is not None else None
                              for j, v in zip(judged[1:], views, strict=True)]
    score_map, raw_map = _mean_maps(maps), _mean_maps(raws)
    regions = find_regions(score_map, model.threshold_) if first.regions or raw_map is not None else []
    return Judgement(float(np.mean([j.score for j in judged])), probabilities, label, score_map, raw_map, regions)


def judge_views(model: InspectionMethod, images: list[np.ndarray], variants: Sequence[str] = ()) -> list[Judgement]:
    """``model.judge(images)`` averaged over the test-time ``variants`` (names in
    ``models.augment_names.TTA_NAMES``; none: the model's plain judgement)."""
    chosen = check_tta(list(variants))
    views = [view for name in chosen if name != MIRROR for view in TTA_VARIANTS[name]]
    if not views or not images:
        return model.judge(images, tta=MIRROR in chosen)
    batch = list(images) + [view.forward(image) for view in views for image in images]
    judged = model.judge(batch, tta=MIRROR in chosen)
    n = len(images)
    return [_averaged(model, [judged[i + n * k] for k in range(len(views) + 1)], views) for i in range(n)]
