"""Anomaly detection from good images only: PatchCore-style memory bank of patch features."""

from models.anomaly.estimator import AnomalyResult, PatchCoreDetector

__all__ = ["AnomalyResult", "PatchCoreDetector"]
