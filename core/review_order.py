"""Which parts an operator should label next, so that each tap teaches the model most.

Uncertainty alone (the parts closest to the threshold) picks near-duplicates of one doubtful look, and
with a few dozen labels that is no better than random (bench/RESULTS.md, "Review and active learning").
The order here combines both ideas known to help few-shot learners: a shortlist of the most uncertain
parts (``SHORTLIST`` times the budget), from which greedy k-center selection (Sener & Savarese 2018)
takes, one by one, the part farthest in backbone-feature space from everything labelled already and
from the earlier picks (uncertainty sampling with diversity, as in Kirsch et al. 2019's batch setting).
"""

from __future__ import annotations

import numpy as np

from models.backbones.registry import pooled_features
from models.preprocess import standardise_intensity
from models.profiles import get_profile

SHORTLIST = 3  # the k-center pick is made among this many times the budget of the most uncertain parts


def diversity_features(profile: str, images: list[np.ndarray]) -> np.ndarray:
    """Pooled backbone features ``(N, 1280)`` of RGB uint8 images (intensity-standardised), unit length."""
    if not images:
        return np.empty((0, 1280))
    features = pooled_features(get_profile(profile), [standardise_intensity(image) for image in images])
    features = features.numpy().astype(np.float64)
    return features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)


def farthest_first(candidates: np.ndarray, labelled: np.ndarray, budget: int) -> list[int]:
    """Greedy k-center: indices of ``budget`` rows of ``candidates (N, D)``, each the one farthest from the
    ``labelled (L, D)`` rows and the earlier picks."""
    if len(labelled):
        nearest = np.min(np.linalg.norm(candidates[:, None] - labelled[None], axis=2), axis=1)
    else:
        nearest = np.full(len(candidates), np.inf)
    picked: list[int] = []
    for _ in range(min(budget, len(candidates))):
        best = int(np.argmax(nearest))
        picked.append(best)
        nearest = np.minimum(nearest, np.linalg.norm(candidates - candidates[best], axis=1))
        nearest[picked] = -1.0
    return picked


def review_order(margins: np.ndarray, features: np.ndarray, labelled: np.ndarray, budget: int) -> list[int]:
    """Indices of at most ``budget`` parts to label, in the order to show them: k-center picks (features
    ``(N, D)`` against the ``labelled (L, D)`` ones) among the ``SHORTLIST * budget`` parts with the
    smallest ``margins`` (distance of the score to the threshold)."""
    shortlist = np.argsort(margins, kind="stable")[: SHORTLIST * budget]
    return [int(shortlist[i]) for i in farthest_first(features[shortlist], labelled, budget)]
