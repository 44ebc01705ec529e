"""The threshold calibration rule (split-conformal on leave-one-out scores) and the normalised scale."""

from __future__ import annotations

import numpy as np
import pytest

from models.anomaly.calibration import (
    MEDIAN_LOGIT,
    calibrate,
    conformal_rank,
    false_alarm_bound,
    more_goods_advised,
)


@pytest.mark.parametrize(("n", "rank"), [(2, 2), (10, 10), (19, 19), (20, 20), (39, 38), (50, 49), (100, 96)])
def test_the_threshold_rank_is_the_conformal_quantile(n: int, rank: int) -> None:
    assert conformal_rank(n, 0.05) == rank


def test_threshold_is_that_ranked_leave_one_out_score_and_maps_to_one_half() -> None:
    scores = np.random.default_rng(0).gamma(4.0, 2.0, size=50)
    calibration = calibrate(scores)
    assert calibration.threshold == np.sort(scores)[48]
    assert calibration.normalise(calibration.threshold) == pytest.approx(0.5)
    median = calibration.normalise(np.median(scores))
    assert median == pytest.approx(1 / (1 + np.exp(MEDIAN_LOGIT)))
    assert calibration.raw(0.8) == pytest.approx(calibration.threshold + calibration.scale * np.log(4))
    normalised = calibration.normalise(np.sort(scores))
    assert np.all(np.diff(normalised) >= 0) and np.all((normalised > 0) & (normalised < 1))


def test_few_goods_put_the_threshold_at_the_largest_score() -> None:
    assert calibrate(np.array([3.0, 1.0, 2.0])).threshold == 3.0


def test_identical_goods_still_give_a_usable_scale() -> None:
    calibration = calibrate(np.full(10, 4.0))
    assert calibration.scale > 0 and calibration.normalise(4.0) == pytest.approx(0.5)
    assert calibration.normalise(5.0) > 0.99


def test_calibration_needs_two_scores() -> None:
    with pytest.raises(ValueError, match="at least two"):
        calibrate(np.array([1.0]))


def test_advice_shrinks_with_more_goods() -> None:
    assert false_alarm_bound(10) == pytest.approx(1 / 11) and false_alarm_bound(100) == 0.05
    assert more_goods_advised(10) == 40 and more_goods_advised(50) == 0 and more_goods_advised(80) == 0
