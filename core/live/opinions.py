"""What a model says about one ROI crop, behind one small interface.

The processor asks each of a tool's models for an :class:`Opinion` of the same crops: the classifier
through the estimator contract ``predict_proba_and_heatmap``, the anomaly model through ``predict``
(normalised score and anomaly map).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class Opinion:
    """One model's view of one crop: defect score in [0, 1], class probabilities (may be empty) and a
    defect map ``(h, w)`` float32 in [0, 1] (``None`` when the model gives none). ``threshold`` is the
    model's own (the anomaly model's calibrated one); ``None`` means the live threshold setting."""

    source: str
    score: float
    probabilities: dict[str, float]
    heatmap: np.ndarray | None
    threshold: float | None = None


class OpinionSource(Protocol):
    """A loaded model that judges ROI crops (RGB uint8 ``(H, W, 3)``)."""

    name: str

    def opinions(self, crops: list[np.ndarray], tta: bool) -> list[Opinion]: ...


class HeatmapClassifier(Protocol):
    classes_: list[str]

    def predict_proba_and_heatmap(self, images: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]: ...


class ClassifierSource:
    """A classifier estimator as an opinion source: score = 1 - P(good class).

    With ``tta`` each crop is also judged mirrored left-right in the same batch; probabilities and the
    (mirrored back) heatmaps are averaged.
    """

    name = "classifier"

    def __init__(self, estimator: HeatmapClassifier, good_class: str) -> None:
        self.estimator = estimator
        self.good_class = good_class

    def opinions(self, crops: list[np.ndarray], tta: bool) -> list[Opinion]:
        images = crops + [np.ascontiguousarray(crop[:, ::-1]) for crop in crops] if tta else crops
        probabilities, heatmaps = self.estimator.predict_proba_and_heatmap(images)
        if tta:
            n = len(crops)
            probabilities = (probabilities[:n] + probabilities[n:]) / 2
            heatmaps = (heatmaps[:n] + heatmaps[n:, :, ::-1]) / 2
        result = []
        for row, heatmap in zip(probabilities, heatmaps, strict=True):
            scores = {name: float(p) for name, p in zip(self.estimator.classes_, row, strict=True)}
            score = min(1.0, max(0.0, 1.0 - scores.get(self.good_class, 0.0)))
            result.append(Opinion(self.name, score, scores, heatmap))
        return result


class AnomalyDetector(Protocol):
    def predict(self, images: list[np.ndarray], threshold: float = 0.5) -> list: ...


class AnomalySource:
    """An anomaly model (trained on good parts only) as an opinion source: its normalised score (0.5 at
    the calibrated threshold) and anomaly map, both clipped to [0, 1].

    With ``tta`` each crop is also judged mirrored left-right; scores and (mirrored back) maps are averaged.
    """

    name = "anomaly"

    def __init__(self, detector: AnomalyDetector, threshold: float) -> None:
        self.detector = detector
        self.threshold = threshold

    def opinions(self, crops: list[np.ndarray], tta: bool) -> list[Opinion]:
        results = self.detector.predict(crops, threshold=self.threshold)
        scores = [r.score for r in results]
        maps = [r.map for r in results]
        if tta:
            mirrored = self.detector.predict([np.ascontiguousarray(c[:, ::-1]) for c in crops], threshold=self.threshold)
            scores = [(a + b.score) / 2 for a, b in zip(scores, mirrored, strict=True)]
            maps = [(a + b.map[:, ::-1]) / 2 for a, b in zip(maps, mirrored, strict=True)]
        return [Opinion(self.name, float(np.clip(score, 0.0, 1.0)), {}, np.clip(m, 0.0, 1.0).astype(np.float32),
                        self.threshold) for score, m in zip(scores, maps, strict=True)]
