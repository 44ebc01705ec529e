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


# --- two models: the cross-check policy --------------------------------------------------------
CLASSIFIER, ANOMALY = "classifier", "anomaly"
ANOMALY_LABEL = "anomaly"  # the label of a part the anomaly model alone fails
POLICY_MODELS: dict[str, frozenset[str]] = {
    "cross-check": frozenset({CLASSIFIER, ANOMALY}),
    "classifier only": frozenset({CLASSIFIER}),
    "anomaly only": frozenset({ANOMALY}),
}


def decide_anomaly(score: float, good_class: str, threshold: float, review_band: float) -> Verdict:
    """The anomaly model's verdict from its normalised score (0.5 at the calibrated threshold)."""
    if score < threshold - review_band:
        return Verdict("pass", good_class, score)
    if score > threshold + review_band:
        return Verdict("fail", ANOMALY_LABEL, score)
    return Verdict("review", ANOMALY_LABEL if score >= threshold else good_class, score)


def models_to_run(policy: str, available: set[str]) -> tuple[frozenset[str], bool]:
    """Which models decide under ``policy`` given the ``available`` ones, and whether that is degraded.

    Degraded: a model the policy wants is missing (not trained, or failed to load), so the other
    one decides alone. Raises ValueError when no model is available or the policy is unknown.
    """
    if policy not in POLICY_MODELS:
        raise ValueError(f"unknown policy {policy!r}; choose one of {', '.join(POLICY_MODELS)}")
    wanted = POLICY_MODELS[policy]
    used = wanted & available
    if used == wanted:
        return used, False
    if used:
        return used, True
    if available:
        return frozenset(available), True
    raise ValueError("no model is available")


def combine(opinions: dict[str, Verdict]) -> Verdict:
    """One verdict from each deciding model's: both pass -> pass, both fail -> fail, else review.

    A single opinion is the verdict. With two, the label of a failing or disputed part is the
    classifier's defect class when it names one, and the score is the higher of the two.
    """
    if len(opinions) == 1:
        return next(iter(opinions.values()))
    classifier, anomaly = opinions[CLASSIFIER], opinions[ANOMALY]
    score = max(classifier.score, anomaly.score)
    if classifier.decision == anomaly.decision == "pass":
        return Verdict("pass", classifier.label, score)
    label = classifier.label if classifier.decision != "pass" else anomaly.label
    decision = "fail" if classifier.decision == anomaly.decision == "fail" else "review"
    return Verdict(decision, label, score)
