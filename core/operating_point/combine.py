"""One defect score from several models' scores: a stacked, calibrated combination.

``combined = sigmoid(intercept + sum_m weight_m * logit(score_m))``: a logistic regression (both classes
weighted equally, L2 with C = 1) on the logits of the models' out-of-fold scores of the same training
images (Wolpert's stacking; the weights are plain numbers, stored as JSON with the operating point).
A single model's combination is the identity (weight 1, intercept 0). The calibration scores of the
combination itself are leave-one-out (each image's combined score from weights fitted without it),
so the rates read from them are as unseen as the models' own out-of-fold scores.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

from core.operating_point.rates import logit

STACK_C = 1.0


@dataclass(frozen=True)
class Combination:
    """``sigmoid(intercept + sum weight[m] * logit(score[m]))`` over the methods in ``weights``."""

    intercept: float = 0.0
    weights: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def methods(self) -> tuple[str, ...]:
        return tuple(self.weights)

    def logit(self, scores: Mapping[str, np.ndarray | float]) -> np.ndarray:
        """The combined score on the logit scale from each method's scores in [0, 1]."""
        total = np.asarray(self.intercept, dtype=np.float64)
        for method, weight in self.weights.items():
            total = total + weight * logit(scores[method])
        return total

    def score(self, scores: Mapping[str, float]) -> float:
        """The combined defect score in [0, 1] of one part."""
        return float(1.0 / (1.0 + math.exp(-float(self.logit(scores)))))

    def as_json(self) -> dict:
        return {"intercept": float(self.intercept), "weights": {m: float(w) for m, w in self.weights.items()}}

    @classmethod
    def from_json(cls, stored: Mapping) -> Combination:
        weights = {str(m): float(w) for m, w in dict(stored["weights"]).items()}
        intercept = float(stored.get("intercept", 0.0))
        if not weights or not all(math.isfinite(v) for v in (intercept, *weights.values())):
            raise ValueError("a combination needs finite weights of at least one method")
        return cls(intercept, MappingProxyType(weights))


def identity(method: str) -> Combination:
    return Combination(0.0, MappingProxyType({method: 1.0}))


def _fit(x: np.ndarray, y: np.ndarray, iterations: int = 50) -> np.ndarray:
    """``[intercept, weights...]`` minimising ``|w|^2 / 2 + C * sum(balanced weight * log loss)`` (scikit-learn's
    ``LogisticRegression(C, class_weight="balanced")`` objective; the intercept is not penalised), by
    Newton's method: a few microseconds for a handful of features, so leave-one-out costs nothing."""
    design = np.column_stack([np.ones(len(y)), x])
    weight = np.where(y, len(y) / (2 * y.sum()), len(y) / (2 * (~y).sum())) * STACK_C
    penalty = np.eye(design.shape[1])
    penalty[0, 0] = 0.0
    beta = np.zeros(design.shape[1])
    for _ in range(iterations):
        p = 1 / (1 + np.exp(-design @ beta))
        gradient = design.T @ (weight * (p - y)) + penalty @ beta
        hessian = (design * (weight * p * (1 - p))[:, None]).T @ design + penalty + 1e-9 * np.eye(len(beta))
        step = np.linalg.solve(hessian, gradient)
        beta -= step
        if np.abs(step).max() < 1e-10:
            break
    return beta


def fit_combination(scores: Mapping[str, np.ndarray], is_defect: np.ndarray) -> tuple[Combination, np.ndarray]:
    """The combination of the methods' paired scores ``{method: (N,)}`` and the leave-one-out combined
    scores ``(N,)`` on the logit scale (one method: the identity and its own logits)."""
    methods = list(scores)
    x = np.column_stack([logit(scores[m]) for m in methods])
    if len(methods) == 1:
        return identity(methods[0]), x[:, 0]
    y = np.asarray(is_defect, dtype=bool)
    if y.all() or not y.any():
        raise ValueError("a stacked combination needs scores of goods and defectives")
    out = np.empty(len(y))
    for i in range(len(y)):
        rest = np.arange(len(y)) != i
        beta = _fit(x[rest], y[rest]) if y[rest].any() and not y[rest].all() else _fit(x, y)
        out[i] = beta[0] + x[i] @ beta[1:]
    final = _fit(x, y)
    combination = Combination(float(final[0]),
                              MappingProxyType({m: float(w) for m, w in zip(methods, final[1:], strict=True)}))
    return combination, out
