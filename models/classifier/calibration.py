"""From out-of-fold defect scores of the training images to a threshold, a review band and a report.

Definitions (stored with every model version). A one-dimensional logistic curve
``P(defect | score) = sigmoid(a + b * score)`` is fitted to the out-of-fold defect scores with both
classes weighted equally (Platt scaling, Platt 1999); its smooth fit varies far less from one small
training set to the next than the best cut of a step function of a few dozen scores.

* **threshold**: the score where that curve crosses 1/2, ``-a / b``, i.e. where a part is as likely
  defective as good with both classes weighted equally (the balanced-accuracy decision), kept within
  the range of the scores; when the curve does not rise with the score (no usable fit), the cut
  between consecutive distinct scores that maximises the out-of-fold balanced accuracy;
* **review band**: the median distance to the threshold of the out-of-fold scores that the
  threshold gets wrong, clipped to [MIN_BAND, MAX_BAND] (MIN_BAND when none is wrong), so about
  half of the mistakes seen in cross-validation would have gone to a person. (A band from the
  same curve, where the odds of a wrong automatic decision exceed 1 : 3, sent about 47 % of the
  ELPV test cells to review at K = 20 against about 27 % for this rule, for one point of accuracy.)
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score, confusion_matrix, recall_score, roc_auc_score, roc_curve

MIN_BAND = 0.02
MAX_BAND = 0.2


def balanced_accuracy_at(scores: np.ndarray, is_defect: np.ndarray, threshold: float) -> float:
    """Balanced accuracy of ``scores > threshold`` against the boolean truth ``is_defect``."""
    predicted = scores > threshold
    return 0.5 * (predicted[is_defect].mean() + (~predicted[~is_defect]).mean())


def platt_fit(scores: np.ndarray, is_defect: np.ndarray) -> tuple[float, float]:
    """``(a, b)`` of the class-balanced logistic curve ``sigmoid(a + b * score)`` (weak L2, C = 100)."""
    fit = LogisticRegression(C=100.0, class_weight="balanced", max_iter=1000).fit(scores[:, None], is_defect)
    return float(fit.intercept_[0]), float(fit.coef_[0, 0])


def best_cut(scores: np.ndarray, is_defect: np.ndarray) -> float:
    """The cut between consecutive distinct scores with the best balanced accuracy (median of ties)."""
    distinct = np.unique(scores)
    cuts = (distinct[:-1] + distinct[1:]) / 2 if len(distinct) > 1 else distinct
    accuracies = np.array([balanced_accuracy_at(scores, is_defect, c) for c in cuts])
    best = cuts[np.isclose(accuracies, accuracies.max(), rtol=0, atol=1e-12)]
    return float(best[(len(best) - 1) // 2])


def calibrate_threshold(scores: np.ndarray, is_defect: np.ndarray) -> float:
    """The threshold of the module docstring; needs both classes in ``is_defect``."""
    a, b = platt_fit(scores, is_defect)
    if b <= 0:
        return best_cut(scores, is_defect)
    return float(np.clip(-a / b, scores.min(), scores.max()))


def review_band(scores: np.ndarray, is_defect: np.ndarray, threshold: float) -> float:
    """The review band of the module docstring."""
    wrong = (scores > threshold) != is_defect
    if not wrong.any():
        return MIN_BAND
    return float(np.clip(np.median(np.abs(scores[wrong] - threshold)), MIN_BAND, MAX_BAND))


def predicted_classes(probabilities: np.ndarray, good_index: int, threshold: float) -> np.ndarray:
    """Class index per row: good when ``1 - P(good) <= threshold``, else the likeliest defect class."""
    defect = probabilities.copy()
    defect[:, good_index] = -np.inf
    return np.where(1.0 - probabilities[:, good_index] > threshold, defect.argmax(axis=1), good_index)


def validation_report(probabilities: np.ndarray, y: np.ndarray, classes: list[str], good_index: int,
                      threshold: float, band: float, folds: int) -> dict[str, Any]:
    """What the user reads about a model, from out-of-fold probabilities ``(N, K)``."""
    scores = 1.0 - probabilities[:, good_index]
    is_defect = y != good_index
    predicted = predicted_classes(probabilities, good_index, threshold)
    labels = list(range(len(classes)))
    recalls = recall_score(y, predicted, average=None, labels=labels, zero_division=0)
    fpr, tpr, _ = roc_curve(is_defect, scores)
    return {
        "cv_folds": folds,
        "balanced_accuracy": float(balanced_accuracy_score(y, predicted)),
        "recall": {name: float(r) for name, r in zip(classes, recalls, strict=True)},
        "confusion": confusion_matrix(y, predicted, labels=labels).tolist(),
        "misclassified": [int(i) for i in np.flatnonzero(predicted != y)],
        "roc": {"auc": float(roc_auc_score(is_defect, scores)), "fpr": fpr.round(4).tolist(),
                "tpr": tpr.round(4).tolist()},
        "threshold": threshold,
        "review_band": band,
        "in_review_band": int(np.sum(np.abs(scores - threshold) <= band)),
    }
