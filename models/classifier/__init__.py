"""Few-shot image classifier on a frozen ImageNet backbone: global and patch opinions, fused."""

from models.classifier.estimator import FewShotClassifier, load_classifier

__all__ = ["FewShotClassifier", "load_classifier"]
