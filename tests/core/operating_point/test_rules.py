"""The pure rules: rates of known score sets, the conformal quantile, targets -> cut points."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.special import ndtr

from core.operating_point.choose import GOODS_ONLY_CONFIDENCE, Targets, choose, goods_only
from core.operating_point.combine import Combination, fit_combination
from core.operating_point.point import OperatingPoint
from core.operating_point.rates import conformal_bound, logit, rates_at, tolerance_cut, wilson


def test_counted_rates_of_known_scores() -> None:
    good = np.array([-3.0, -2.0, -1.0, 0.5, 2.0])  # logit scale
    defect = np.array([-1.5, 0.2, 1.0, 3.0])
    rates = rates_at(good, defect, lo=0.0, hi=1.5, smoothed=False)
    # goods: 3 pass, 1 review (0.5), 1 fail (2.0); defects: 1 pass, 2 review, 1 fail
    assert rates.false_reject == pytest.approx(1 / 4)
    assert rates.escape == pytest.approx(1 / 2)
    assert (rates.review_good, rates.review_defect) == (pytest.approx(0.2), pytest.approx(0.5))
    assert rates.review == pytest.approx(0.5)  # any share of defectives: the larger class share
    assert rates_at(good, defect, 0.0, 1.5, False, defect_share=0.2).review == pytest.approx(0.2 * 0.5 + 0.8 * 0.2)
    assert rates.escape_bound == pytest.approx(2 / 5) and rates.false_reject_bound == pytest.approx(2 / 6)
    low, high = rates.escape_range
    assert low < 0.5 < high


def test_wilson_and_conformal_bound() -> None:
    low, high = wilson(0.1, 100)
    assert 0.05 < low < 0.1 < high < 0.17
    assert conformal_bound(0, 20) == pytest.approx(1 / 21)


def test_goods_only_cut_is_the_conformal_quantile_or_the_higher_tolerance_bound() -> None:
    scores = np.linspace(0.05, 0.6, 20)
    choice = goods_only({"anomaly": scores}, Targets(0.0, "max_false_reject", 0.10))
    z = logit(scores)
    rank = math.ceil((1 - 0.10) * 21)  # 19th smallest of 20
    tolerance = tolerance_cut(z, 0.10, GOODS_ONLY_CONFIDENCE)
    assert tolerance > np.sort(z)[rank - 1]  # 20 scores: the tolerance bound lies beyond the conformal rank
    assert logit(choice.hi) == pytest.approx(tolerance, abs=1e-6)
    assert choice.lo == choice.hi  # no review budget, no band
    assert choice.promised.escape is None and "unknown" in choice.sentence()
    assert choice.promised.false_reject_bound == pytest.approx(1 / 21)  # no calibration good above the cut
    assert "Gaussian tolerance" in choice.rule and "split-conformal" in choice.rule
    narrow = np.r_[np.full(18, 0.1), 0.9, 0.9]  # two outliers: the conformal rank is above the tolerance bound
    assert goods_only({"anomaly": narrow}, Targets(0.0, "max_false_reject", 0.10)).hi == pytest.approx(0.9)


def test_goods_only_cut_keeps_its_promise_on_new_goods() -> None:
    """Both guarantees on Gaussian goods: on average over calibration sets, new goods beyond the cut
    <= the conformal bound; and the cut lets more than alpha through on at most 1 - confidence of them."""
    rng = np.random.default_rng(0)
    alpha = 0.10 * (1 - 0.2)
    exceed = []
    for _ in range(400):
        calibration = 1 / (1 + np.exp(-rng.normal(-2.0, 1.0, 20)))
        choice = goods_only({"anomaly": calibration}, Targets(0.2, "max_false_reject", 0.10))
        exceed.append(1 - ndtr(logit(choice.hi) + 2.0))  # exact share of N(-2, 1) goods beyond the cut
    assert np.mean(exceed) <= 2 / 21 + 0.01
    assert np.mean(np.array(exceed) > alpha) <= 1 - GOODS_ONLY_CONFIDENCE + 0.04


def test_goods_only_refuses_other_goals_and_says_why() -> None:
    with pytest.raises(ValueError, match="unknown until defective"):
        choose({"anomaly": np.linspace(0.1, 0.5, 20)}, np.zeros(20, dtype=bool), Targets(0.2))
    choice = goods_only({"anomaly": np.linspace(0.1, 0.5, 20)}, Targets(0.0, "max_false_reject", 0.01))
    assert choice.problems and "99 good images" in choice.problems[0]


def _scores(seed: int = 0, n: int = 20, gap: float = 1.5) -> tuple[dict[str, np.ndarray], np.ndarray]:
    rng = np.random.default_rng(seed)
    is_defect = np.repeat([False, True], n)
    shift = np.where(is_defect, gap, -gap)
    clf = 1 / (1 + np.exp(-(shift + rng.normal(0, 1.2, 2 * n))))
    ano = 1 / (1 + np.exp(-(shift + rng.normal(0, 1.5, 2 * n))))
    return {"classifier": clf, "anomaly": ano}, is_defect


def test_minimax_uses_the_review_budget_and_balances_the_rates() -> None:
    scores, is_defect = _scores()
    choice = choose(scores, is_defect, Targets(0.2))
    assert choice.met and 0 < choice.lo < choice.hi < 1
    assert choice.promised.review <= 0.2 + 1e-9
    assert abs(choice.promised.escape - choice.promised.false_reject) < 0.05
    wider = choose(scores, is_defect, Targets(0.4))
    assert max(wider.promised.escape, wider.promised.false_reject) <= \
        max(choice.promised.escape, choice.promised.false_reject) + 1e-9
    assert [row["max_review"] for row in choice.curve][:3] == [0.0, 0.05, 0.1]


def test_max_escape_meets_conformal_risk_control_or_says_what_is_missing() -> None:
    scores, is_defect = _scores()
    choice = choose(scores, is_defect, Targets(0.3, "max_escape", 0.15))
    assert choice.met and choice.promised.escape <= 0.15
    assert choice.promised.escape_bound <= 0.15  # (k + 1) / (n + 1) with k defectives below lo
    too_strict = choose(scores, is_defect, Targets(0.2, "max_escape", 0.02))
    assert not too_strict.met and "49 are needed" in too_strict.problems[0]
    unreachable = choose(*_scores(gap=0.3), Targets(0.0, "max_escape", 0.06))
    assert not unreachable.met and "review share would help" in unreachable.problems[0]


def test_stacked_combination_is_plain_numbers_and_consistent() -> None:
    scores, is_defect = _scores(1)
    combination, loo = fit_combination(scores, is_defect)
    assert set(combination.as_json()["weights"]) == {"classifier", "anomaly"}
    assert all(w > 0 for w in combination.weights.values())
    part = {"classifier": 0.7, "anomaly": 0.4}
    expected = combination.intercept + sum(w * logit(part[m]) for m, w in combination.weights.items())
    assert combination.score(part) == pytest.approx(1 / (1 + math.exp(-expected)))
    assert Combination.from_json(combination.as_json()) == combination
    assert loo.shape == (40,)


def test_operating_point_round_trips_as_json() -> None:
    scores, is_defect = _scores(2)
    choice = choose(scores, is_defect, Targets(0.2, "cost_ratio", 3.0))
    point = OperatingPoint.from_choice(choice, {"classifier": 3, "anomaly": 4})
    again = OperatingPoint.from_json(point.as_json())
    assert again.as_json() == point.as_json()
    assert again.applies_to({"classifier": 3, "anomaly": 4}) and not again.applies_to({"classifier": 3})
    with pytest.raises(ValueError, match="lo <= hi"):
        OperatingPoint.from_json({**point.as_json(), "lo": 0.9, "hi": 0.1})
