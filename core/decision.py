"""From class probabilities to pass / fail / review."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Verdict:
    decision: str  # pass | fail | review
    label: str  # the good class, or the most likely defect class
    score: float  # in [0, 1]: how defective the part looks (1 - P(good))


def decide(probabilities: dict[str, float], good_class: str, threshold: float, review_band: float) -> Verdict:
    """Score = 1 - P(good). Below ``threshold - band`` passes, above ``threshold + band`` fails,
    in between goes to a person. The label of a fail is the most likely defect class."""
    score = min(1.0, max(0.0, 1.0 - probabilities.get(good_class, 0.0)))
    defects = {k: v for k, v in probabilities.items() if k != good_class}
    defect_label = max(defects, key=defects.__getitem__) if defects else good_class
    if score < threshold - review_band:
        return Verdict("pass", good_class, score)
    if score > threshold + review_band:
        return Verdict("fail", defect_label, score)
    return Verdict("review", defect_label if score >= threshold else good_class, score)
