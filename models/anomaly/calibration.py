"""Threshold and score scale of an anomaly model from the good training images alone.

Rule (split-conformal, Vovk et al. 2005; Angelopoulos & Bates 2021): each training good is scored
by a model fitted without it, everything learned included (projection, memory, position scale;
leave-one-out up to 10 goods, 10 folds beyond), so it is as unseen as a new good part. The
threshold is the ``ceil((1 - alpha) (N + 1))``-th smallest of these N scores (the largest when that
rank exceeds N). For goods that are exchangeable with the training ones, a new
good part scores above it with probability at most ``max(alpha, 1 / (N + 1))``; alpha = 5 %. (Scores
from models fitted without one good or one fold make this the jackknife+ / cross-conformal variant of
the rule, Vovk 2015, Barber et al. 2021: its worst-case bound is looser, about twice alpha; measured on
ELPV, 2.8-5.1 % of unseen goods went past the threshold, bench/RESULTS.md.)

Normalised score: ``sigmoid(2 (raw - threshold) / (threshold - median))``: the threshold maps to
0.5 and the median good to sigmoid(-2) = 0.12 on every tool, so the scale reads the same
everywhere; a part as far above the threshold as the median good is below it scores 0.88.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

FALSE_ALARM = 0.05  # alpha of the rule above
MEDIAN_LOGIT = 2.0  # the median good maps to sigmoid(-2)
MIN_SCALE_FRACTION = 0.02  # the scale never drops below 2 % of the median (near-identical goods)
RECOMMENDED_GOODS = 50  # the rule's bound is then 2 %, and the benchmark's AUC has mostly levelled off


@dataclass(frozen=True)
class Calibration:
    threshold: float  # raw score that maps to 0.5
    scale: float  # raw score units per unit of the normalised logit

    def normalise(self, raw: np.ndarray | float) -> np.ndarray:
        """Raw distances to scores in (0, 1), ``threshold`` -> 0.5."""
        z = (np.asarray(raw, dtype=np.float64) - self.threshold) / self.scale
        return 1.0 / (1.0 + np.exp(-np.clip(z, -50, 50)))

    def normalise_map(self, raw: np.ndarray) -> np.ndarray:
        """``normalise`` of a large float32 map ``(H, W)`` in float32, in one work array (a 3,036 x 1,820 px
        part's map would take several 44 MB float64 temporaries)."""
        z = np.subtract(raw, np.float32(self.threshold), dtype=np.float32)
        z /= np.float32(-self.scale)
        np.clip(z, -50, 50, out=z)
        np.exp(z, out=z)
        z += 1
        return np.reciprocal(z, out=z)

    def raw(self, normalised: float) -> float:
        """The raw score of a normalised score in (0, 1) (the inverse of ``normalise``)."""
        return self.threshold + self.scale * math.log(normalised / (1.0 - normalised))


def conformal_rank(n: int, alpha: float = FALSE_ALARM) -> int:
    """1-based rank of the threshold among ``n`` sorted out-of-fold scores."""
    return min(n, math.ceil((1 - alpha) * (n + 1)))


def calibrate(out_of_fold: np.ndarray, alpha: float = FALSE_ALARM) -> Calibration:
    """The calibration of the rule above from the out-of-fold raw scores of the goods."""
    scores = np.sort(np.asarray(out_of_fold, dtype=np.float64))
    if scores.size < 2:
        raise ValueError("calibration needs the scores of at least two good images")
    threshold = float(scores[conformal_rank(scores.size, alpha) - 1])
    median = float(np.median(scores))
    scale = max((threshold - median) / MEDIAN_LOGIT, MIN_SCALE_FRACTION * abs(median), 1e-12)
    return Calibration(threshold=threshold, scale=scale)


def false_alarm_bound(n_goods: int, alpha: float = FALSE_ALARM) -> float:
    """The rule's bound on the share of good parts flagged, with ``n_goods`` training goods."""
    return max(alpha, 1.0 / (n_goods + 1))


def more_goods_advised(n_goods: int) -> int:
    """How many more good images would make the model and its threshold more reliable."""
    return max(0, RECOMMENDED_GOODS - n_goods)


def good_only_report(noun: str, good_class: str, n_goods: int, ignored: int, calibration: Calibration,
                     reference_scores: list[float]) -> dict:
    """The training report of a method that learns from good images only (``noun``: "anomaly model",
    "kNN model"): the validation (goods used, images ignored, goods advised, the raw calibration), the
    normalised out-of-fold scores of the goods and the notices for the user."""
    missing = more_goods_advised(n_goods)
    notices = []
    if ignored:
        notices.append(f"{ignored} image(s) not labelled {good_class!r} were ignored: "
                       f"a{'n' if noun[0] in 'aeiou' else ''} {noun} learns from good images only")
    if missing:
        notices.append(f"{missing} more good image(s) would make the {noun} and its threshold more reliable")
    validation = {"n_good": n_goods, "ignored_non_good": ignored, "more_goods_advised": missing,
                  "threshold_raw": calibration.threshold, "scale_raw": calibration.scale}
    return {"validation": validation, "reference_scores": list(reference_scores), "n_samples": n_goods,
            "notices": notices}
