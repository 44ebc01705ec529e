"""kNN on globally pooled backbone features, learned from good images only: the simplest method."""

from models.knn.estimator import KnnDetector

__all__ = ["KnnDetector"]
