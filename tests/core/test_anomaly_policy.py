"""The cross-check policy: which models decide, the combined verdict for every combination of
opinions, and degraded mode when a wanted model is missing."""

from __future__ import annotations

import itertools

import pytest

from core.decision import ANOMALY, ANOMALY_LABEL, CLASSIFIER, POLICY_MODELS, Verdict, combine, decide_anomaly, models_to_run

BOTH = {CLASSIFIER, ANOMALY}
DECISIONS = ("pass", "fail", "review")
SCORES = {"pass": 0.1, "review": 0.5, "fail": 0.9}


def _verdict(decision: str, label: str) -> Verdict:
    return Verdict(decision, "good" if decision == "pass" else label, SCORES[decision])


@pytest.mark.parametrize(("policy", "available", "used", "degraded"), [
    ("cross-check", BOTH, BOTH, False),
    ("cross-check", {CLASSIFIER}, {CLASSIFIER}, True),
    ("cross-check", {ANOMALY}, {ANOMALY}, True),
    ("classifier only", BOTH, {CLASSIFIER}, False),
    ("classifier only", {CLASSIFIER}, {CLASSIFIER}, False),
    ("classifier only", {ANOMALY}, {ANOMALY}, True),
    ("anomaly only", BOTH, {ANOMALY}, False),
    ("anomaly only", {ANOMALY}, {ANOMALY}, False),
    ("anomaly only", {CLASSIFIER}, {CLASSIFIER}, True),
])
def test_models_to_run_for_every_policy_and_availability(policy, available, used, degraded) -> None:
    assert models_to_run(policy, set(available)) == (frozenset(used), degraded)


@pytest.mark.parametrize("policy", list(POLICY_MODELS))
def test_no_model_at_all_is_an_error(policy: str) -> None:
    with pytest.raises(ValueError, match="no model"):
        models_to_run(policy, set())


def test_an_unknown_policy_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown policy"):
        models_to_run("majority", BOTH)


@pytest.mark.parametrize(("classifier", "anomaly"), list(itertools.product(DECISIONS, DECISIONS)))
def test_cross_check_agreement_decides_and_disagreement_goes_to_review(classifier: str, anomaly: str) -> None:
    opinions = {CLASSIFIER: _verdict(classifier, "crack"), ANOMALY: _verdict(anomaly, ANOMALY_LABEL)}
    verdict = combine(opinions)
    expected = classifier if classifier == anomaly else "review"
    assert verdict.decision == expected
    assert verdict.score == max(SCORES[classifier], SCORES[anomaly])
    if expected == "pass":
        assert verdict.label == "good"
    elif classifier != "pass":
        assert verdict.label == "crack"  # the classifier names the defect class
    else:
        assert verdict.label == ANOMALY_LABEL


@pytest.mark.parametrize(("kind", "decision"), list(itertools.product([CLASSIFIER, ANOMALY], DECISIONS)))
def test_a_single_opinion_is_the_verdict(kind: str, decision: str) -> None:
    verdict = _verdict(decision, "crack")
    assert combine({kind: verdict}) is verdict


@pytest.mark.parametrize(("score", "decision", "label"), [
    (0.1, "pass", "good"), (0.39, "pass", "good"), (0.4, "review", "good"), (0.5, "review", ANOMALY_LABEL),
    (0.6, "review", ANOMALY_LABEL), (0.61, "fail", ANOMALY_LABEL), (0.99, "fail", ANOMALY_LABEL),
])
def test_anomaly_verdict_around_the_threshold(score: float, decision: str, label: str) -> None:
    assert decide_anomaly(score, "good", 0.5, 0.1) == Verdict(decision, label, score)
