"""Targets -> cut points: the rules that pick an operating point from calibration scores.

Targets: a maximum review share and one goal: ``minimax`` (the smallest max(escape, false reject)),
``max_escape`` E (the fewest false rejects with escapes <= E), ``max_false_reject`` F (the fewest
escapes with false rejects <= F) or ``cost_ratio`` C (the least expected cost per part when an escape
costs C false rejects). Candidates are all pairs ``lo <= hi`` of a grid on the combined score's logit
scale; rates are read from the smoothed calibration scores (``rates``).

Which rule each promise uses:

* ``minimax`` and ``cost_ratio``: estimates (smoothed), with Wilson ranges; the conformal bounds are
  reported beside them;
* ``max_escape`` / ``max_false_reject``: the capped rate also meets conformal risk control
  (Angelopoulos et al. 2022, "Conformal Risk Control"): with ``k`` of ``n`` calibration images of the
  class beyond the cut, ``(k + 1) / (n + 1) <= target``, which bounds the expected share of that
  class's new parts beyond the cut (per part, guaranteed for exchangeable parts);
* adapted to new parts (``new_scores``, ``adapt``): estimates from the new parts' scores weighted by
  their fitted probability of each class (a two-class mixture of the calibration shapes moved by one
  shift); a model, no guarantee; their ranges join Wilson's with a bootstrap of the mixture
  (``adapt.bootstrap_ranges``); the conformal bounds beside them are the moved calibration scores'.
  When the models' own fitted shares disagree (``adapt.cross_check``) the adaptation is refused and
  the point is the training images' (the rule says so, ``adapted.refused`` says why);
* good images only (``max_false_reject`` with an anomaly model and no defective images): the fail cut
  is the higher of the split-conformal quantile of the goods' out-of-fold scores at ``a = F (1 - R)``
  (rank ``ceil((1 - a) (n + 1))``: goods fail with probability at most ``a`` per part, on average over
  training sets, distribution-free) and their one-sided Gaussian tolerance bound (``rates.tolerance_cut``:
  with ``GOODS_ONLY_CONFIDENCE`` over training sets at most ``a`` of good parts fail, if the goods'
  logits are Gaussian). With 20 goods the conformal quantile is the largest score, whose miss rate
  varies as Beta(1, 20) from one training set to the next (90th percentile 11 %); the tolerance bound
  holds per training set (ELPV, 16 seeds at 5 %: realized <= 7 % on 14, was 12). The R share of goods
  just below the cut go to a person; the escape rate is unknown until defective parts are seen.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import numpy as np

from core.operating_point.adapt import Shift, Window, bootstrap_ranges, cross_check, window
from core.operating_point.combine import Combination, fit_combination, identity
from core.operating_point.rates import (
    Rates,
    bandwidth,
    below,
    conformal_bound,
    gaussian_tail,
    logit,
    rates_at,
    review_share,
    sigmoid,
    tolerance_cut,
    wilson,
)

GOALS = ("minimax", "max_escape", "max_false_reject", "cost_ratio")
GOODS_ONLY_RATES = (0.01, 0.02, 0.05, 0.10)
GOODS_ONLY_CONFIDENCE = 0.9  # of the Gaussian tolerance bound (over training sets)
GRID = 161
MIN_PER_CLASS = 5
MAX_OTHER = 0.5  # a capped rate that costs more than this of the other rate is reported as not met
RANGE_HALF_WIDTH = 0.05  # "how many more images": enough for a range of about +-5 points


@dataclass(frozen=True)
class Targets:
    max_review: float
    goal: str = "minimax"
    value: float | None = None  # E, F or C (None for minimax)
    defect_share: float | None = None  # the line's share of defective parts (None: any)

    def validated(self) -> Targets:
        if not 0.0 <= float(self.max_review) <= 1.0:
            raise ValueError("the maximum review share is between 0 and 1")
        if self.goal not in GOALS:
            raise ValueError(f"unknown goal {self.goal!r}; choose one of {', '.join(GOALS)}")
        if self.goal == "minimax" and self.value is not None:
            raise ValueError("minimax takes no value")
        if self.goal != "minimax" and self.value is None:
            raise ValueError(f"{self.goal} needs a value")
        if self.goal in ("max_escape", "max_false_reject") and not 0.0 < float(self.value) < 1.0:
            raise ValueError(f"{self.goal} is a rate between 0 and 1")
        if self.goal == "cost_ratio" and not 0.0 < float(self.value) < 1e6:
            raise ValueError("the cost ratio is a positive number (an escape costs C false rejects)")
        if self.defect_share is not None and not 0.0 < float(self.defect_share) < 1.0:
            raise ValueError("the share of defective parts is between 0 and 1")
        return Targets(float(self.max_review), self.goal, None if self.value is None else float(self.value),
                       None if self.defect_share is None else float(self.defect_share))

    def as_json(self) -> dict:
        return {"max_review": self.max_review, "goal": self.goal, "value": self.value,
                "defect_share": self.defect_share}

    @classmethod
    def from_json(cls, stored: Mapping) -> Targets:
        return cls(stored["max_review"], stored.get("goal", "minimax"), stored.get("value"),
                   stored.get("defect_share")).validated()


@dataclass(frozen=True)
class Choice:
    """The operating point a rule picked (cut points on the combined score in [0, 1])."""

    targets: Targets
    combination: Combination
    lo: float
    hi: float
    rule: str
    promised: Rates  # smoothed estimates (goods only: the conformal rule)
    counts: Rates  # the same cut points counted on the calibration scores
    n_good: int
    n_defect: int
    problems: tuple[str, ...] = ()  # targets that cannot be met, and what would help
    curve: tuple[dict, ...] = field(default=(), repr=False)  # the trade-off over review budgets
    adapted: Shift | None = None  # the fitted move to new parts, when adapted

    @property
    def met(self) -> bool:
        return not self.problems

    def sentence(self) -> str:
        return plain_sentence(self.promised)


def plain_sentence(rates: Rates) -> str:
    """The operating point in plain words."""
    parts = []
    if rates.escape is None:
        parts.append("the escape rate is unknown until defective parts are seen")
    else:
        low, high = rates.escape_range or (rates.escape, rates.escape)
        parts.append(f"of 100 defective parts decided automatically, about {100 * rates.escape:.0f} pass unseen "
                     f"(likely {100 * low:.0f} to {100 * high:.0f})")
    if rates.false_reject is not None:
        low, high = rates.false_reject_range or (rates.false_reject, rates.false_reject)
        parts.append(f"of 100 good parts decided automatically, about {100 * rates.false_reject:.0f} are "
                     f"rejected ({100 * low:.0f} to {100 * high:.0f})")
    parts.append(f"{100 * rates.review:.0f} of 100 parts go to review")
    text = "; ".join(parts)
    return text[0].upper() + text[1:] + "."


def images_for_range(rate: float) -> int:
    """Images of a class a rate near ``rate`` must rest on for a 90 % range of about +-5 points."""
    p = min(max(rate, 0.05), 0.5)
    return math.ceil(1.6449 ** 2 * p * (1 - p) / RANGE_HALF_WIDTH ** 2)


@dataclass(frozen=True)
class _Grid:
    cuts: np.ndarray  # (G,) logit scale
    good_below: np.ndarray  # (G,) smoothed share of goods below each cut
    defect_below: np.ndarray
    good_counts: np.ndarray  # (G,) count of goods strictly above each cut
    defect_counts: np.ndarray  # (G,) count of defectives strictly below each cut


def _grid(z_good: np.ndarray, z_defect: np.ndarray, new: Window | None = None) -> _Grid:
    """Candidate cuts with each class's share below them: smoothed calibration scores, or (``new``) the
    posterior-weighted new scores; the counts are the calibration scores' (moved by the fitted shift)."""
    z = np.concatenate([z_good, z_defect] + ([] if new is None else [new.z]))
    margin = 3 * max(bandwidth(z_good), bandwidth(z_defect))
    cuts = np.linspace(z.min() - margin, z.max() + margin, GRID)
    shares = ((below(z_good, cuts, True), below(z_defect, cuts, True)) if new is None
              else (new.below(cuts, False), new.below(cuts, True)))
    return _Grid(cuts, *shares, (z_good[None, :] > cuts[:, None]).sum(axis=1),
                 (z_defect[None, :] < cuts[:, None]).sum(axis=1))


def _pick(grid: _Grid, targets: Targets, n_good: int, n_defect: int, max_review: float) -> tuple[int, int] | None:
    """Indices ``(lo, hi)`` of the best pair meeting ``targets`` at ``max_review`` (None: none does)."""
    g, d = grid.good_below, grid.defect_below
    d_pass, d_review = d[:, None], d[None, :] - d[:, None]
    g_fail, g_review = 1 - g[None, :], g[None, :] - g[:, None]
    d_decided, g_decided = d_pass + (1 - d[None, :]), g[:, None] + g_fail
    escape = np.divide(d_pass, d_decided, out=np.zeros_like(d_review), where=d_decided > 1e-12)
    false_reject = np.divide(g_fail, g_decided, out=np.zeros_like(g_review), where=g_decided > 1e-12)
    share = targets.defect_share
    review = np.maximum(g_review, d_review) if share is None else share * d_review + (1 - share) * g_review
    feasible = np.triu(np.ones((len(g), len(g)), dtype=bool)) & (review <= max_review + 1e-9)
    if targets.goal == "minimax":
        objective = np.maximum(escape, false_reject)
    elif targets.goal == "max_escape":
        crc = (grid.defect_counts[:, None] + 1) / (n_defect + 1) <= targets.value
        feasible &= (escape <= targets.value) & crc
        objective = false_reject
    elif targets.goal == "max_false_reject":
        crc = (grid.good_counts[None, :] + 1) / (n_good + 1) <= targets.value
        feasible &= (false_reject <= targets.value) & crc
        objective = escape
    else:
        p = 0.5 if share is None else share
        objective = targets.value * p * d_pass + (1 - p) * g_fail
    if not feasible.any():
        return None
    objective = np.where(feasible, objective, np.inf)
    best = objective.min()
    near = feasible & (objective <= best + 1e-4)
    near_review = np.where(near, review, np.inf)
    i, j = np.unravel_index(int(np.argmin(near_review)), near_review.shape)
    return int(i), int(j)


def _problems(targets: Targets, n_good: int, n_defect: int) -> list[str]:
    if targets.goal == "max_escape" and 1 / (n_defect + 1) > targets.value:
        return [f"a maximum escape rate of {targets.value:.0%} cannot be guaranteed from {n_defect} defective "
                f"images: at least {math.ceil(1 / targets.value) - 1} are needed"]
    if targets.goal == "max_false_reject" and 1 / (n_good + 1) > targets.value:
        return [f"a maximum false-reject rate of {targets.value:.0%} cannot be guaranteed from {n_good} good "
                f"images: at least {math.ceil(1 / targets.value) - 1} are needed"]
    return []


def _too_costly(targets: Targets, promised: Rates, n_good: int, n_defect: int) -> str | None:
    """A capped rate met only by giving up the other one (beyond MAX_OTHER): what the data allows."""
    if targets.goal == "max_escape" and (promised.false_reject or 0.0) > MAX_OTHER:
        other, name, cls, n = promised.false_reject, "false-reject", "defective", n_defect
    elif targets.goal == "max_false_reject" and (promised.escape or 0.0) > MAX_OTHER:
        other, name, cls, n = promised.escape, "escape", "good", n_good
    else:
        return None
    return (f"{targets.goal.replace('_', ' ')} {targets.value:.0%} cannot be met at {targets.max_review:.0%} review "
            f"without a {name} rate of about {other:.0%}: these scores do not separate the classes enough. "
            f"A larger review share would help, and more images of both classes make better models; the cap "
            f"rests on {n} {cls} images, about {max(images_for_range(targets.value), n + 1)} would narrow its "
            "range to +-5 points")


def choose(scores: Mapping[str, np.ndarray], is_defect: np.ndarray, targets: Targets,
           budgets: tuple[float, ...] = (0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5),
           new_scores: Mapping[str, np.ndarray] | None = None) -> Choice:
    """The operating point meeting ``targets`` from paired calibration scores ``{method: (N,)}`` in
    [0, 1] (out of fold) and the truth ``is_defect (N,)``; ``curve`` holds the same goal's best point at
    each review budget. ``new_scores`` (unlabelled scores ``{method: (M,)}`` of inspected parts) adapts
    the point to new parts (``adapt``): the calibration scores' shapes are moved by the fitted shift and
    the cut points are chosen, and the rates promised, on the new parts' posterior-weighted scores.
    ValueError when the data cannot give one (say what to add)."""
    targets = targets.validated()
    is_defect = np.asarray(is_defect, dtype=bool)
    n_good, n_defect = int((~is_defect).sum()), int(is_defect.sum())
    if n_good < MIN_PER_CLASS:
        raise ValueError(f"an operating point needs the scores of at least {MIN_PER_CLASS} good images "
                         f"({n_good} paired)")
    if n_defect == 0:
        return goods_only(scores, targets)
    if n_defect < MIN_PER_CLASS:
        raise ValueError(f"an operating point needs the scores of at least {MIN_PER_CLASS} defective images "
                         f"({n_defect} paired), or none for the good-only rule")
    combination, z = fit_combination(scores, is_defect)
    z_good, z_defect = calibration_good, calibration_defect = z[~is_defect], z[is_defect]
    new = None if new_scores is None else window(z_good, z_defect, combination.logit(new_scores))
    shift = None
    if new is not None:
        shift = cross_check(new.shift, {m: (logit(v[~is_defect]), logit(v[is_defect])) for m, v in scores.items()},
                            {m: logit(new_scores[m]) for m in scores})
        if shift.used:
            z_good, z_defect = z_good + shift.delta, z_defect + shift.delta
        else:
            new = None  # fail safe: the point from the training images alone
    grid = _grid(z_good, z_defect, new)
    problems = _problems(targets, n_good, n_defect)
    picked = None if problems else _pick(grid, targets, n_good, n_defect, targets.max_review)
    fallback = picked is None
    if fallback:  # fall back to the smallest max(escape, false reject) within the review cap
        picked = _pick(grid, Targets(targets.max_review, "minimax", None, targets.defect_share), n_good, n_defect,
                       targets.max_review)
        assert picked is not None
    lo, hi = grid.cuts[picked[0]], grid.cuts[picked[1]]
    promised = _rates(z_good, z_defect, lo, hi, targets.defect_share, new)
    if new is not None:
        promised = _with_model_ranges(promised, bootstrap_ranges(calibration_good, calibration_defect, new.z, lo, hi))
    counts = rates_at(z_good, z_defect, lo, hi, False, targets.defect_share)
    costly = _too_costly(targets, promised, n_good, n_defect)
    problems += [costly] if costly else []
    curve = []
    for budget in budgets:
        pair = _pick(grid, targets, n_good, n_defect, budget)
        if pair is not None:
            at = _rates(z_good, z_defect, grid.cuts[pair[0]], grid.cuts[pair[1]], targets.defect_share, new)
            curve.append({"max_review": budget, "review": round(at.review, 4), "escape": round(at.escape or 0, 4),
                          "false_reject": round(at.false_reject or 0, 4)})
    adapted = ("adapted to new parts (posterior-weighted new scores): " if new is not None else
               "training images only (adaptation refused, see adapted.refused): " if shift is not None else "")
    rule = adapted + {"minimax": "estimate: smoothed calibration scores, smallest max(escape, false reject)",
            "cost_ratio": "estimate: smoothed calibration scores, least expected cost",
            "max_escape": "conformal risk control on escapes per defective part (guaranteed) and the smoothed "
                          "estimate",
            "max_false_reject": "conformal risk control on false rejects per good part (guaranteed) and the "
                                "smoothed estimate"}["minimax" if fallback else targets.goal]
    return Choice(targets, combination, float(sigmoid(lo)), float(sigmoid(hi)), rule, promised, counts, n_good,
                  n_defect, tuple(problems), tuple(curve), shift)


def _rates(z_good: np.ndarray, z_defect: np.ndarray, lo: float, hi: float, defect_share: float | None,
           new: Window | None) -> Rates:
    """The promised rates at ``lo, hi``: from the smoothed calibration scores, or (``new``) from the new
    parts' posterior-weighted scores (ranges on the expected number of each class's parts decided; the
    conformal bounds stay the moved calibration scores')."""
    base = rates_at(z_good, z_defect, lo, hi, True, defect_share)
    if new is None:
        return base
    escape, fr, d_decided, g_decided = new.decided_rates(lo, hi)
    review_good, review_defect = 1 - g_decided, 1 - d_decided
    return Rates(escape, fr, review_share(review_good, review_defect, defect_share),
                 wilson(escape, round(d_decided * new.size(True))), wilson(fr, round(g_decided * new.size(False))),
                 base.escape_bound, base.false_reject_bound, review_good, review_defect)


def _with_model_ranges(promised: Rates, model: tuple[tuple[float, float], tuple[float, float]]) -> Rates:
    """The adapted promise's ranges widened to hold the mixture's own (``adapt.bootstrap_ranges``) too."""
    def joined(first: tuple[float, float], second: tuple[float, float]) -> tuple[float, float]:
        return min(first[0], second[0]), max(first[1], second[1])

    return replace(promised, escape_range=joined(promised.escape_range, model[0]),
                   false_reject_range=joined(promised.false_reject_range, model[1]))


def goods_only(scores: Mapping[str, np.ndarray], targets: Targets) -> Choice:
    """The good-only rule of the module doc (one method's out-of-fold scores of goods)."""
    if len(scores) != 1:
        raise ValueError("with good images only, one model decides (the anomaly model)")
    if targets.goal != "max_false_reject" or targets.value not in GOODS_ONLY_RATES:
        raise ValueError("with good images only, choose the false-reject rate (1, 2, 5 or 10 %); the escape "
                         "rate is unknown until defective parts are seen")
    (method, values), = scores.items()
    z = np.sort(logit(np.asarray(values, dtype=np.float64)))
    n = len(z)
    alpha = targets.value * (1 - targets.max_review)
    rank = min(n, math.ceil((1 - alpha) * (n + 1)))
    tolerance = tolerance_cut(z, alpha, GOODS_ONLY_CONFIDENCE)
    hi = max(float(z[rank - 1]), tolerance)
    below_hi = float(np.mean(z <= hi))
    lo = hi if targets.max_review == 0 else min(hi, float(np.quantile(z, max(0.0, below_hi - targets.max_review))))
    bound = conformal_bound(int(np.sum(z > hi)), n)
    review_good = float(np.mean((z >= lo) & (z <= hi)))
    decided = max(1e-12, 1 - review_good)
    estimate = min(1.0, min(bound, gaussian_tail(z, hi)) / decided)
    promised = Rates(None, estimate, review_share(review_good, None, None), None,
                     wilson(estimate, round(decided * n)), None, bound, review_good, None)
    counts = rates_at(z, np.empty(0), lo, hi, False)
    problems = []
    if 1 / (n + 1) > alpha:
        problems.append(f"a false-reject rate of {targets.value:.0%} needs at least "
                        f"{math.ceil(1 / alpha) - 1} good images for its distribution-free guarantee ({n} now; "
                        f"that bound is {bound:.1%}); the cut rests on the Gaussian tolerance bound")
    rule = (f"Gaussian tolerance bound of the goods' out-of-fold scores: with {GOODS_ONLY_CONFIDENCE:.0%} "
            f"confidence over training sets, at most {alpha:.1%} of good parts fail if those scores are Gaussian "
            "(logit scale); never below the split-conformal quantile (guaranteed per good part, on average)")
    return Choice(targets, identity(method), float(sigmoid(lo)), float(sigmoid(hi)), rule,
                  promised, counts, n, 0, tuple(problems), ())
