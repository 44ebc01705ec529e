"""The operating-point bench's hindsight bound: the best pair of cut points chosen with the labels."""

import itertools

import numpy as np

from bench.operating_point import hindsight


def brute_force(score: np.ndarray, truth: np.ndarray, max_review: float) -> float:
    """Every pair of cuts between sorted scores, counted directly."""
    order = np.argsort(score, kind="stable")
    t = truth[order]
    n, best = len(t), 1.0
    for i, j in itertools.combinations_with_replacement(range(n + 1), 2):
        if j - i > int(max_review * n):
            continue
        passed, failed = t[:i], t[j:]
        d_decided, g_decided = passed.sum() + failed.sum(), (~passed).sum() + (~failed).sum()
        escape = passed.sum() / d_decided if d_decided else 0.0
        false_reject = (~failed).sum() / g_decided if g_decided else 0.0
        best = min(best, max(escape, false_reject))
    return best


def test_separable_scores_need_no_review_and_make_no_mistake() -> None:
    score = np.array([0.1, 0.2, 0.3, 0.7, 0.8])
    truth = np.array([False, False, False, True, True])
    assert hindsight(score, truth, 0.0) == {"max_escape_fr": 0.0, "escape": 0.0, "false_reject": 0.0,
                                            "review": 0.0}


def test_matches_every_pair_counted_directly() -> None:
    rng = np.random.default_rng(3)
    for _ in range(20):
        truth = rng.random(40) < 0.35
        score = rng.normal(truth * 1.2, 1.0)
        for max_review in (0.0, 0.1, 0.25):
            found = hindsight(score, truth, max_review)
            assert abs(found["max_escape_fr"] - brute_force(score, truth, max_review)) < 1e-12
            assert found["review"] <= max_review + 1e-12
