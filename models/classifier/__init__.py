"""Few-shot image classifier on a frozen ImageNet backbone."""

from models.classifier.estimator import FrozenFeatureClassifier

__all__ = ["FrozenFeatureClassifier"]
