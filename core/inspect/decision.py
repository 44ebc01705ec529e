"""From each model's defect score to pass / fail / review, and from several models' verdicts to one.

Every method scores a part in [0, 1] (higher looks more defective) and carries a decision threshold
and an uncertainty band on that score (calibrated when it was trained, or chosen by the user).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

ANOMALY_LABEL = "anomaly"  # the label of a part failed by a model that names no defect class


@dataclass(frozen=True)
class Verdict:
    decision: str  # pass | fail | review
    label: str  # the good class, or the defect class the deciding model names (else "anomaly")
    score: float  # in [0, 1]: how defective the part looks


class NonFiniteScoreError(ValueError):
    """A model gave NaN or an infinite score: the part must not pass."""


def decide(score: float, good_class: str, defect_label: str | None, threshold: float, review_band: float) -> Verdict:
    """Below ``threshold - band`` passes, above ``threshold + band`` fails, in between goes to a person.

    The label of a fail is ``defect_label`` (``anomaly`` when the model names no class). A non-finite
    score raises NonFiniteScoreError (fail closed: the engine sends such a part to review).
    """
    if not math.isfinite(score):
        raise NonFiniteScoreError(f"the model gave a score of {score}")
    defect = defect_label or ANOMALY_LABEL
    if score < threshold - review_band:
        return Verdict("pass", good_class, score)
    if score > threshold + review_band:
        return Verdict("fail", defect, score)
    return Verdict("review", defect if score >= threshold else good_class, score)


def decide_between(score: float, good_class: str, defect_label: str | None, lo: float, hi: float) -> Verdict:
    """An operating point's rule on a combined score: below ``lo`` passes, above ``hi`` fails, in between
    (inclusive) goes to a person (:func:`decide` with the midpoint and half the width)."""
    return decide(score, good_class, defect_label, (lo + hi) / 2, (hi - lo) / 2)


def combine(verdicts: list[Verdict]) -> Verdict:
    """One verdict from the deciding models' (in registry order): all pass -> pass, all fail -> fail,
    otherwise review. The label of a failing or disputed part is the first non-passing model's; the
    score is the highest."""
    if not verdicts:
        raise ValueError("no verdict to combine")
    if len(verdicts) == 1:
        return verdicts[0]
    score = max(v.score for v in verdicts)
    if all(v.decision == "pass" for v in verdicts):
        return Verdict("pass", verdicts[0].label, score)
    label = next(v.label for v in verdicts if v.decision != "pass")
    decision = "fail" if all(v.decision == "fail" for v in verdicts) else "review"
    return Verdict(decision, label, score)
