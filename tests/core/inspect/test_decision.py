"""core.inspect.decision: one rule for every model (a score, a threshold, a review band), the
combination of several models' verdicts, and fail-closed handling of a score that is not a number.

Scores are binary fractions (0.25, 0.375, ...) so the boundaries are exact in floating point.
"""

from __future__ import annotations

import itertools
import math

import pytest

from core.inspect.decision import ANOMALY_LABEL, NonFiniteScoreError, Verdict, combine, decide

THRESHOLD, BAND = 0.5, 0.25  # pass below 0.25, fail above 0.75, review in [0.25, 0.75]
DECISIONS = ("pass", "fail", "review")
SCORES = {"pass": 0.1, "review": 0.5, "fail": 0.9}


@pytest.mark.parametrize(("score", "decision", "label"), [
    (0.0, "pass", "good"),
    (0.1875, "pass", "good"),
    (0.25 - 2**-20, "pass", "good"),  # just below threshold - band
    (0.25, "review", "good"),  # exactly threshold - band: review
    (0.375, "review", "good"),  # inside the band, below the threshold: leaning good
    (0.5, "review", "crack"),  # exactly the threshold: leaning defect
    (0.75, "review", "crack"),  # exactly threshold + band: still review
    (0.75 + 2**-20, "fail", "crack"),  # just above threshold + band
    (1.0, "fail", "crack"),
])
def test_boundaries(score: float, decision: str, label: str) -> None:
    assert decide(score, "good", "crack", THRESHOLD, BAND) == Verdict(decision, label, score)


def test_a_model_that_names_no_class_fails_parts_as_anomaly() -> None:
    assert decide(0.9, "good", None, 0.5, 0.1) == Verdict("fail", ANOMALY_LABEL, 0.9)
    assert decide(0.55, "good", None, 0.5, 0.1) == Verdict("review", ANOMALY_LABEL, 0.55)


def test_no_band_splits_at_the_threshold_and_the_threshold_moves_the_decision() -> None:
    assert decide(0.4375, "good", "crack", 0.5, 0.0).decision == "pass"
    assert decide(0.5625, "good", "crack", 0.5, 0.0) == Verdict("fail", "crack", 0.5625)
    assert decide(0.625, "good", "crack", 0.75, 0.0).decision == "pass"
    assert decide(0.625, "good", "crack", 0.75, 0.125).decision == "review"


@pytest.mark.parametrize("score", [math.nan, math.inf, -math.inf])
def test_a_score_that_is_not_a_number_never_passes(score: float) -> None:
    with pytest.raises(NonFiniteScoreError):
        decide(score, "good", "crack", THRESHOLD, BAND)


def _verdict(decision: str, label: str) -> Verdict:
    return Verdict(decision, "good" if decision == "pass" else label, SCORES[decision])


@pytest.mark.parametrize(("first", "second"), list(itertools.product(DECISIONS, DECISIONS)))
def test_agreement_decides_and_disagreement_goes_to_review(first: str, second: str) -> None:
    verdict = combine([_verdict(first, "crack"), _verdict(second, ANOMALY_LABEL)])
    expected = first if first == second else "review"
    assert verdict.decision == expected
    assert verdict.score == max(SCORES[first], SCORES[second])
    if expected == "pass":
        assert verdict.label == "good"
    elif first != "pass":
        assert verdict.label == "crack"  # the first model (the classifier, in registry order) names the class
    else:
        assert verdict.label == ANOMALY_LABEL


@pytest.mark.parametrize("decision", DECISIONS)
def test_a_single_opinion_is_the_verdict(decision: str) -> None:
    verdict = _verdict(decision, "crack")
    assert combine([verdict]) is verdict


def test_three_models_must_all_agree() -> None:
    assert combine([_verdict("fail", "crack")] * 3).decision == "fail"
    assert combine([_verdict("pass", "x"), _verdict("pass", "x"), _verdict("fail", "dent")]) == Verdict(
        "review", "dent", 0.9)
