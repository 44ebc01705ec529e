"""core.decision.decide: score = 1 - P(good), with a review band around the threshold.

Probabilities are binary fractions (0.25, 0.375, ...) so the boundaries are exact in floating point.
"""

from __future__ import annotations

import pytest

from core.decision import Verdict, decide

THRESHOLD, BAND = 0.5, 0.25  # pass below 0.25, fail above 0.75, review in [0.25, 0.75]


def probs(good: float, crack: float | None = None) -> dict[str, float]:
    rest = 1.0 - good
    crack = rest * 0.75 if crack is None else crack
    return {"good": good, "crack": crack, "stain": rest - crack}


@pytest.mark.parametrize(("p_good", "decision", "label"), [
    (1.0, "pass", "good"),
    (0.8125, "pass", "good"),  # score 0.1875: well below the band
    (0.75 + 2**-20, "pass", "good"),  # just below threshold - band
    (0.75, "review", "good"),  # score exactly threshold - band: review
    (0.625, "review", "good"),  # inside the band, below the threshold: leaning good
    (0.5, "review", "crack"),  # exactly the threshold: leaning defect
    (0.375, "review", "crack"),
    (0.25, "review", "crack"),  # score exactly threshold + band: still review
    (0.25 - 2**-20, "fail", "crack"),  # just above threshold + band
    (0.0, "fail", "crack"),
])
def test_boundaries(p_good: float, decision: str, label: str) -> None:
    verdict = decide(probs(p_good), "good", THRESHOLD, BAND)
    assert verdict.decision == decision
    assert verdict.label == label
    assert verdict.score == pytest.approx(1.0 - p_good)


def test_fail_label_is_the_most_likely_defect_class() -> None:
    verdict = decide({"good": 0.125, "crack": 0.25, "stain": 0.625}, "good", THRESHOLD, BAND)
    assert verdict == Verdict("fail", "stain", 0.875)
    verdict = decide({"stain": 0.125, "good": 0.125, "crack": 0.75}, "good", THRESHOLD, BAND)
    assert verdict == Verdict("fail", "crack", 0.875)


def test_no_band_splits_at_the_threshold() -> None:
    assert decide({"good": 0.5625, "crack": 0.4375}, "good", 0.5, 0.0).decision == "pass"
    assert decide({"good": 0.4375, "crack": 0.5625}, "good", 0.5, 0.0) == Verdict("fail", "crack", 0.5625)
    assert decide({"good": 0.5, "crack": 0.5}, "good", 0.5, 0.0) == Verdict("review", "crack", 0.5)


def test_threshold_moves_the_decision() -> None:
    p = {"good": 0.375, "crack": 0.625}  # score 0.625
    assert decide(p, "good", 0.5, 0.0).decision == "fail"
    assert decide(p, "good", 0.75, 0.0).decision == "pass"
    assert decide(p, "good", 0.75, 0.125).decision == "review"


def test_score_is_clipped_and_missing_good_means_defective() -> None:
    assert decide({"crack": 1.0}, "good", THRESHOLD, BAND) == Verdict("fail", "crack", 1.0)
    assert decide({"good": 1.5, "crack": 0.0}, "good", THRESHOLD, BAND).score == 0.0
    assert decide({"good": -0.5, "crack": 1.5}, "good", THRESHOLD, BAND).score == 1.0


def test_good_only_tool_labels_with_the_good_class() -> None:
    assert decide({"good": 0.0}, "good", THRESHOLD, BAND) == Verdict("fail", "good", 1.0)
    assert decide({"ok": 0.9, "bad": 0.1}, "ok", THRESHOLD, BAND) == Verdict("pass", "ok", pytest.approx(0.1))
