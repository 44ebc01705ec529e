"""The calibration scores a model version stores: one out-of-fold defect score per training image,
keyed by sample id, so two versions' scores can be paired and an operating point computed later.

* a method that learns from labelled images (the classifier): its cross-validated scores of every
  training image (``oof_scores_``, in the order of ``fit``'s images);
* a method that learns from goods only (the anomaly model): its out-of-fold scores of the goods
  (``reference_scores_``, in the order of the goods among ``fit``'s images) and its scores of the
  other training images, which it never learned from (``score_others``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

KEY = "calibration_scores"  # where a version's metrics keep them


def judge_scores(model: Any, images: Sequence[np.ndarray], batch: int = 8) -> list[float]:
    """Scores of ``images`` as the engine's ``judge`` gives them (no test-time augmentation)."""
    scores: list[float] = []
    for start in range(0, len(images), batch):
        scores.extend(float(j.score) for j in model.judge(list(images[start : start + batch])))
    return scores


def calibration_scores(model: Any, labels: Sequence[str], sample_ids: Sequence[Any],
                       score_others: Callable[[list[int]], list[float]]) -> dict[str, list]:
    """``{"sample_ids", "scores", "defect"}`` of a fitted model (see the module doc); ``score_others(rows)``
    scores the training images at ``rows`` that a good-only model did not learn from."""
    is_defect = [label != model.good_class for label in labels]
    if model.learns_from == "good":
        goods = [i for i, defect in enumerate(is_defect) if not defect]
        others = [i for i, defect in enumerate(is_defect) if defect]
        if len(model.reference_scores_) != len(goods):
            raise ValueError("the model's out-of-fold scores do not match its good training images")
        by_row = dict(zip(goods, model.reference_scores_, strict=True))
        by_row.update(zip(others, score_others(others) if others else [], strict=True))
        scores = [float(by_row[i]) for i in range(len(labels))]
    else:
        scores = [float(s) for s in np.asarray(model.oof_scores_, dtype=np.float64)]
    return {"sample_ids": list(sample_ids), "scores": [round(s, 6) for s in scores], "defect": is_defect}
