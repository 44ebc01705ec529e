"""Kept on new parts: the shift of the calibration scores, fitted to unlabelled scores of inspected parts.

The models score new parts somewhat differently from the training images' out-of-fold scores (on ELPV
the final models score unseen parts about 0.3 logit lower: bench/RESULTS.md, "Operating points"), so
cut points chosen on the calibration scores alone sit off target. The combined scores of the parts a
station inspected are always at hand, without labels. Model them as a two-class mixture whose classes
have the calibration scores' smoothed shapes (``rates.below``'s kernels), both moved by one common
``delta`` on the logit scale, with an unknown share of defective parts ``pi``:

    f(z) = (1 - pi) g(z - delta) + pi d(z - delta)

``delta`` and ``pi`` maximise the likelihood of the new scores (a grid over ``delta``, coarse then
fine; EM for ``pi`` at each). The adapted point (``choose(..., new_scores=...)``) is then chosen, and
its rates promised, on the new scores themselves, each weighted by its posterior probability of being
defective or good under the fitted mixture (``Window``): closer to the line's rates than the moved
calibration shapes, which a few dozen images make too wide (ELPV: bench/RESULTS.md). The mixture is a
model: when the classes' shapes on the line differ from the calibration ones (not only moved), the
fitted share and the promise are off (ELPV seeds 2 and 9: share 0.58 and 0.50 against 0.31, half the
decided goods failed).

Fail safe (``cross_check``): the share of defective parts is a property of the parts, not of the score,
so under the model each deciding model's own scores, fitted alone the same way, give the same share.
When a model's own share differs from the combined score's by more than ``SHARE_TOLERANCE`` (about two
bootstrap standard deviations of a share fitted on 200 parts: 0.03-0.06 on ELPV), the mixture does not
describe the line and the adaptation is refused: ``choose`` keeps the point from the training images
alone and says so. One model alone has nothing to cross-check with (``check = "none"``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

import numpy as np

from core.operating_point.rates import bandwidth, conditional

MAX_SHIFT = 3.0  # logit units searched either way
STEP = 0.01
COARSE = 0.1
MIN_NEW = 50  # fewer unlabelled scores say too little about the shift
WINDOW = 200  # recent inspections an adapted point is fitted to
EM_STEPS = 200
SHARE_TOLERANCE = 0.1  # largest difference between a model's own fitted share and the combined one
BOOTSTRAP = 50  # resamples behind the ranges of an adapted promise
RANGE = (0.05, 0.95)  # their percentiles: a 90 % range, as Wilson's


@dataclass(frozen=True)
class Shift:
    """The fitted move of the calibration scores and the share of defective parts among the new ones."""

    delta: float
    defect_share: float
    n_new: int
    model_shares: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))  # each model alone
    refused: str | None = None  # why the adaptation was not used (None: used)

    @property
    def used(self) -> bool:
        return self.refused is None

    def as_json(self) -> dict:
        return {"delta": round(self.delta, 4), "defect_share": round(self.defect_share, 4), "n_new": self.n_new,
                "model_shares": {m: round(v, 4) for m, v in self.model_shares.items()},
                "check": "share per model" if self.model_shares else "none", "used": self.used,
                "refused": self.refused}


def _density(z: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Gaussian-kernel density of ``centres`` (bandwidth as ``rates.below``) at each of ``z (..., n)``."""
    h = bandwidth(centres)
    u = (z[..., None] - centres) / h
    return np.exp(-0.5 * u * u).mean(axis=-1) / (h * np.sqrt(2 * np.pi))


def _defect_share(good: np.ndarray, defect: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """EM for the mixture weight of ``defect`` at each row of class densities ``(S, n)``: the share
    ``(S,)`` and the mean log-likelihood per score ``(S,)``."""
    pi = np.full(good.shape[0], 0.5)
    for _ in range(EM_STEPS):
        mixed = (1 - pi)[:, None] * good + pi[:, None] * defect
        updated = np.mean(pi[:, None] * defect / np.maximum(mixed, 1e-300), axis=1)
        if np.abs(updated - pi).max() < 1e-7:
            pi = updated
            break
        pi = updated
    mixed = (1 - pi)[:, None] * good + pi[:, None] * defect
    return pi, np.log(np.maximum(mixed, 1e-300)).mean(axis=1)


def fit_shift(z_good: np.ndarray, z_defect: np.ndarray, z_new: np.ndarray) -> Shift:
    """``delta`` and ``pi`` of the module doc from calibration scores of each class and the unlabelled
    scores ``z_new`` of new parts (all on the logit scale). ValueError when there are too few new ones."""
    z_new = np.asarray(z_new, dtype=np.float64)
    z_new = z_new[np.isfinite(z_new)]
    if len(z_new) < MIN_NEW:
        raise ValueError(f"adapting to new parts needs the scores of at least {MIN_NEW} inspected parts "
                         f"({len(z_new)} found)")
    floor = 1e-6 / (np.ptp(np.concatenate([z_good, z_defect])) + 1.0)  # a new score far from both classes

    def best(deltas: np.ndarray) -> tuple[float, float]:
        moved = z_new[None, :] - deltas[:, None]  # (S, n)
        good = _density(moved, np.asarray(z_good, dtype=np.float64)) + floor
        defect = _density(moved, np.asarray(z_defect, dtype=np.float64)) + floor
        pi, likelihood = _defect_share(good, defect)
        i = int(np.argmax(likelihood))
        return float(deltas[i]), float(pi[i])

    coarse, _ = best(np.arange(-MAX_SHIFT, MAX_SHIFT + STEP / 2, COARSE))  # then refined around the best
    delta, pi = best(np.clip(np.arange(coarse - COARSE, coarse + COARSE + STEP / 2, STEP), -MAX_SHIFT, MAX_SHIFT))
    return Shift(delta, pi, len(z_new))


@dataclass(frozen=True)
class Window:
    """Unlabelled new scores ``z (n,)`` with each one's posterior probability ``defect (n,)`` of being
    defective under the fitted mixture: the class shares the adapted point reads its rates from."""

    z: np.ndarray
    defect: np.ndarray
    shift: Shift

    def below(self, cuts: np.ndarray, defective: bool) -> np.ndarray:
        """Posterior-weighted share of the class's new parts below each cut ``(G,)``."""
        weight = self.defect if defective else 1.0 - self.defect
        return (weight[None, :] * (self.z[None, :] < cuts[:, None])).sum(axis=1) / max(float(weight.sum()), 1e-12)

    def decided_rates(self, lo: float, hi: float) -> tuple[float, float, float, float]:
        """Escape and false-reject rates at cut points ``lo <= hi`` (logit scale), and the shares of
        defective and good new parts decided automatically."""
        cuts = np.array([lo, hi])
        g, d = self.below(cuts, False), self.below(cuts, True)
        d_decided, g_decided = float(d[0] + 1 - d[1]), float(g[0] + 1 - g[1])
        return conditional(float(d[0]), d_decided), conditional(float(1 - g[1]), g_decided), d_decided, g_decided

    def size(self, defective: bool) -> float:
        """The class's expected number of parts in the window."""
        return float(self.defect.sum() if defective else (1.0 - self.defect).sum())


def window(z_good: np.ndarray, z_defect: np.ndarray, z_new: np.ndarray) -> Window:
    """``fit_shift`` and the posterior of each new score under the fitted mixture."""
    shift = fit_shift(z_good, z_defect, z_new)
    z = np.asarray(z_new, dtype=np.float64)
    z = z[np.isfinite(z)]
    good = (1 - shift.defect_share) * _density(z - shift.delta, np.asarray(z_good, dtype=np.float64))
    defect = shift.defect_share * _density(z - shift.delta, np.asarray(z_defect, dtype=np.float64))
    posterior = np.divide(defect, good + defect, out=np.full(len(z), shift.defect_share), where=good + defect > 0)
    return Window(z, posterior, shift)


def bootstrap_ranges(z_good: np.ndarray, z_defect: np.ndarray, z_new: np.ndarray, lo: float, hi: float,
                     replicates: int = BOOTSTRAP, seed: int = 0) -> tuple[tuple[float, float], tuple[float, float]]:
    """90 % ranges of the adapted escape and false-reject rates at cut points ``lo, hi`` (logit scale):
    each class's calibration scores and the new scores resampled with replacement and the mixture fitted
    again, ``replicates`` times (seeded: the same data gives the same ranges). They carry the mixture's
    own uncertainty, which an interval on the number of new parts leaves out (ELPV, 37 adapted seeds:
    Wilson's ranges held the realized false-reject rate on 25, these joined with them on 32;
    bench/RESULTS.md, "Operating points")."""
    rng = np.random.default_rng(seed)
    rates = np.array([window(rng.choice(z_good, len(z_good)), rng.choice(z_defect, len(z_defect)),
                             rng.choice(z_new, len(z_new))).decided_rates(lo, hi)[:2] for _ in range(replicates)])
    low, high = np.quantile(rates, RANGE, axis=0)
    return (float(low[0]), float(high[0])), (float(low[1]), float(high[1]))


def cross_check(shift: Shift, calibration: Mapping[str, tuple[np.ndarray, np.ndarray]],
                new: Mapping[str, np.ndarray]) -> Shift:
    """``shift`` (fitted on the combined score) with each model's own fitted share, refused when one
    differs from it by more than ``SHARE_TOLERANCE`` (module doc). ``calibration``: each model's
    ``(good, defect)`` calibration logits; ``new``: its logits of the new parts. One model: unchanged."""
    if len(calibration) < 2:
        return shift
    shares = {m: fit_shift(good, defect, new[m]).defect_share for m, (good, defect) in calibration.items()}
    worst = max(shares, key=lambda m: abs(shares[m] - shift.defect_share))
    refused = None
    if abs(shares[worst] - shift.defect_share) > SHARE_TOLERANCE:
        refused = (f"the mixture does not describe these parts: the combined score puts the share of defective "
                   f"parts at {shift.defect_share:.0%}, the {worst} model's own scores at {shares[worst]:.0%} "
                   f"(more than {SHARE_TOLERANCE:.0%} apart)")
    return replace(shift, model_shares=MappingProxyType(shares), refused=refused)
