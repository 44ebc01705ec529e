"""The three rates of a pair of cut points on a defect score, with ranges and bounds.

Cut points ``lo <= hi``: a score below ``lo`` passes, above ``hi`` fails, in between goes to a person.
Definitions (issue 18): **escape rate** = defectives passed / defectives decided automatically;
**false-reject rate** = goods failed / goods decided automatically; **review share** = parts sent to a
person / all parts (at the line's share of defective parts, or, when it is not given, the larger of
the two classes' review shares, which bounds it at any share).

Three ways to state a rate from a few calibration scores:

* ``empirical``: counts;
* ``smoothed`` (the promise): each class's scores smoothed by a Gaussian kernel on the logit scale
  (Silverman's bandwidth), the rate read from the smoothed distribution; on ELPV (8 seeds of 20 + 20)
  its promises were closer to the rates on unseen parts than counts, half or twice the bandwidth, or
  one Gaussian per class (bench/RESULTS.md, "Operating points");
* ``range``: Wilson's 90 % interval for a proportion at the promise, from the number of images of the
  class that are decided automatically;
* ``bound`` (guaranteed): the split-conformal rank bound (Vovk et al. 2005; Angelopoulos & Bates
  2021): with ``k`` of ``n`` calibration scores of a class beyond a cut placed at a calibration score,
  a new exchangeable part of that class lands beyond it with probability at most ``(k + 1) / (n + 1)``
  (a per-part rate: of all defectives / of all goods, not only of the automatically decided ones).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy.special import ndtr

LOGIT_CLIP = 10.0
WILSON_Z = 1.6449  # two-sided 90 %


def logit(p: np.ndarray | float) -> np.ndarray:
    """Scores in [0, 1] to the logit scale, clipped to +-LOGIT_CLIP."""
    q = np.clip(np.asarray(p, dtype=np.float64), 1e-12, 1 - 1e-12)
    return np.clip(np.log(q / (1 - q)), -LOGIT_CLIP, LOGIT_CLIP)


def sigmoid(z: np.ndarray | float) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(z, dtype=np.float64)))


def wilson(p: float, n: int, z: float = WILSON_Z) -> tuple[float, float]:
    """Wilson's interval for a proportion ``p`` observed on ``n`` images ((0, 1) when n = 0)."""
    if n <= 0:
        return 0.0, 1.0
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def conformal_bound(k: int, n: int) -> float:
    """The split-conformal rank bound ``(k + 1) / (n + 1)`` of the module doc (1 when n = 0)."""
    return min(1.0, (k + 1) / (n + 1)) if n > 0 else 1.0


def bandwidth(z: np.ndarray) -> float:
    """Silverman's rule-of-thumb bandwidth of scores on the logit scale (at least 0.05)."""
    if len(z) < 2:
        return 1.0
    spread = min(float(np.std(z, ddof=1)), float(np.subtract(*np.percentile(z, [75, 25]))) / 1.34 or np.inf)
    return max(0.05, 0.9 * spread * len(z) ** -0.2)


def below(z: np.ndarray, cuts: np.ndarray, smoothed: bool) -> np.ndarray:
    """Share of the scores ``z (n,)`` (logit scale) below each cut ``(G,)``: counts, or smoothed."""
    if len(z) == 0:
        return np.full(len(cuts), np.nan)
    if smoothed:
        return ndtr((cuts[:, None] - z[None, :]) / bandwidth(z)).mean(axis=1)
    return (z[None, :] < cuts[:, None]).mean(axis=1)


@dataclass(frozen=True)
class ClassRates:
    """One class at one pair of cut points: shares of its parts passed, reviewed and failed."""

    passed: float
    review: float
    failed: float
    n: int  # calibration images of the class

    @property
    def decided(self) -> float:
        return self.passed + self.failed


@dataclass(frozen=True)
class Rates:
    """The three rates of one operating point (see the module doc); ``None``: unknown (no images)."""

    escape: float | None
    false_reject: float | None
    review: float
    escape_range: tuple[float, float] | None
    false_reject_range: tuple[float, float] | None
    escape_bound: float | None  # guaranteed, per defective part
    false_reject_bound: float | None  # guaranteed, per good part
    review_good: float
    review_defect: float | None

    def as_json(self) -> dict:
        def rounded(value: object) -> object:
            if isinstance(value, float):
                return round(value, 4)
            if isinstance(value, tuple):
                return [rounded(v) for v in value]
            return value

        return {key: rounded(value) for key, value in asdict(self).items()}


def review_share(review_good: float, review_defect: float | None, defect_share: float | None) -> float:
    """Review share at the line's ``defect_share`` (None: the larger of the two classes')."""
    if review_defect is None:
        return review_good
    if defect_share is None:
        return max(review_good, review_defect)
    return defect_share * review_defect + (1 - defect_share) * review_good


def conditional(numerator: float, decided: float) -> float:
    return numerator / decided if decided > 1e-12 else 0.0


def rates_at(z_good: np.ndarray, z_defect: np.ndarray, lo: float, hi: float, smoothed: bool = True,
             defect_share: float | None = None) -> Rates:
    """The rates of cut points ``lo <= hi`` (logit scale) on calibration scores of each class."""
    cuts = np.array([lo, hi])
    good_below = below(z_good, cuts, smoothed)
    good = ClassRates(float(good_below[0]), float(good_below[1] - good_below[0]), float(1 - good_below[1]),
                      len(z_good))
    n_failed_good = int(np.sum(z_good > hi))
    fr = conditional(good.failed, good.decided)
    fr_range = wilson(fr, round(good.decided * good.n))
    if len(z_defect) == 0:
        return Rates(None, fr, good.review, None, fr_range, None, conformal_bound(n_failed_good, len(z_good)),
                     good.review, None)
    defect_below = below(z_defect, cuts, smoothed)
    defect = ClassRates(float(defect_below[0]), float(defect_below[1] - defect_below[0]),
                        float(1 - defect_below[1]), len(z_defect))
    escape = conditional(defect.passed, defect.decided)
    return Rates(escape, fr, review_share(good.review, defect.review, defect_share),
                 wilson(escape, round(defect.decided * defect.n)), fr_range,
                 conformal_bound(int(np.sum(z_defect < lo)), len(z_defect)),
                 conformal_bound(n_failed_good, len(z_good)), good.review, defect.review)


def tolerance_cut(z: np.ndarray, alpha: float, confidence: float) -> float:
    """The one-sided Gaussian tolerance bound of scores ``z (n,)`` (logit scale): ``mean + k sd`` with
    ``k = t'_{confidence}(n - 1, z_{1 - alpha} sqrt(n)) / sqrt(n)`` (noncentral t), so that with probability
    ``confidence`` over samples of n Gaussian scores at most ``alpha`` of new ones exceed it (a
    training-conditional, PAC bound; Krishnamoorthy & Mathew 2009, ch. 2)."""
    from scipy.stats import nct, norm  # ~1 s to import: only here, not in every settings or CLI process

    n = len(z)
    if n < 2:
        return math.inf
    k = float(nct.ppf(confidence, n - 1, norm.ppf(1 - alpha) * math.sqrt(n))) / math.sqrt(n)
    return float(np.mean(z) + k * np.std(z, ddof=1))


def gaussian_tail(z: np.ndarray, cut: float) -> float:
    """Share of a Gaussian fitted to ``z (n,)`` above ``cut`` (the estimate beside ``tolerance_cut``)."""
    sd = float(np.std(z, ddof=1)) if len(z) > 1 else 0.0
    if sd <= 0:
        return float(np.mean(z > cut))
    return float(1 - ndtr((cut - float(np.mean(z))) / sd))
