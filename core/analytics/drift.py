"""Score drift: the defect-score distribution of recent passes against the model's reference.

Both distributions are histograms of the defect score over ``FINE_BINS`` equal bins of [0, 1],
counted in the database (recent passes) or from ``metrics["reference_scores"]`` (out-of-fold scores of
the training goods, stored with a model version).

- PSI (population stability index) over ``PSI_BINS`` equal bins of [0, 1]:
  ``sum((r_i - e_i) * ln(r_i / e_i))`` with ``r`` the recent and ``e`` the reference proportions, each
  floored at ``PSI_FLOOR`` so that empty bins stay finite. Usual reading: < 0.1 stable, 0.1-0.25
  moderate shift, > 0.25 large shift.
- KS: the largest gap between the two cumulative distributions at the ``FINE_BINS`` bin edges
  (the two-sample Kolmogorov-Smirnov statistic of the scores rounded down to 0.01).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import timedelta

import numpy as np
from sqlalchemy.orm import Session

from storage import analytics_queries as q
from storage import repository as repo
from storage.analytics_queries import InspectionScope, Source

FINE_BINS = q.FINE_SCORE_BINS
PSI_BINS = 20
PSI_FLOOR = 1e-4
DEFAULT_WARNING_PSI = 0.2
REFERENCE_DAYS = 3
MIN_SCORES = 30  # below this many scores on either side the statistics are shown as not reliable


def score_histogram(scores: Sequence[float], bins: int = FINE_BINS) -> np.ndarray:
    """Counts of ``scores`` in ``bins`` equal bins of [0, 1] (1.0 in the last bin), as the database bins them."""
    values = np.asarray(scores, dtype=float)
    index = np.clip(np.floor((values - 0) / (1 / bins)).astype(int), 0, bins - 1)
    return np.bincount(index, minlength=bins)


def _coarsen(counts: np.ndarray, bins: int) -> np.ndarray:
    return counts.reshape(bins, -1).sum(axis=1)


def psi(reference: np.ndarray, recent: np.ndarray, bins: int = PSI_BINS) -> float:
    """Population stability index of two fine histograms, over ``bins`` coarser bins."""
    expected = _coarsen(reference, bins) / reference.sum()
    actual = _coarsen(recent, bins) / recent.sum()
    expected, actual = np.maximum(expected, PSI_FLOOR), np.maximum(actual, PSI_FLOOR)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def ks(reference: np.ndarray, recent: np.ndarray) -> float:
    """Largest gap between the two cumulative distributions at the bin edges."""
    return float(np.max(np.abs(np.cumsum(reference) / reference.sum() - np.cumsum(recent) / recent.sum())))


@dataclass(frozen=True)
class DriftReport:
    """Drift of one model version's pass scores; ``psi`` / ``ks`` are None when a side has no scores."""

    model_version_id: int
    reference_source: str
    reference: np.ndarray
    recent: np.ndarray
    psi: float | None
    ks: float | None
    warning_level: float

    @property
    def n_reference(self) -> int:
        return int(self.reference.sum())

    @property
    def n_recent(self) -> int:
        return int(self.recent.sum())

    @property
    def reliable(self) -> bool:
        return min(self.n_reference, self.n_recent) >= MIN_SCORES

    @property
    def drifted(self) -> bool:
        return self.psi is not None and self.psi >= self.warning_level


def _pass_histogram(session: Session, scope: InspectionScope, source: Source = "inspections") -> np.ndarray:
    return np.asarray(q.score_histogram(session, replace(scope, decision="pass"), source))


def reference_histogram(session: Session, model_version_id: int) -> tuple[np.ndarray, str]:
    """The version's reference pass-score histogram and a sentence saying what it is."""
    version = repo.get_model_version(session, model_version_id)
    if version is None:
        return np.zeros(FINE_BINS, dtype=int), f"model version {model_version_id} does not exist"
    stored = (version.metrics or {}).get("reference_scores")
    if stored:
        return score_histogram(stored), (f"training-time scores of v{model_version_id}: out-of-fold defect "
                                         f"scores of its {len(stored)} good training images")
    first = q.first_inspection_time(session, model_version_id)
    if first is None:
        return np.zeros(FINE_BINS, dtype=int), f"v{model_version_id} has no reference scores and no inspections yet"
    until = first + timedelta(days=REFERENCE_DAYS)
    scope = InspectionScope(version.tool_id, first, until, model_version_id=model_version_id)
    return _pass_histogram(session, scope), (
        f"no training-time scores stored with v{model_version_id}: its passes of the first "
        f"{REFERENCE_DAYS} days in service ({first:%Y-%m-%d %H:%M} to {until:%Y-%m-%d %H:%M} UTC)")


def drift_report(session: Session, scope: InspectionScope, model_version_id: int,
                 warning_level: float = DEFAULT_WARNING_PSI, source: Source = "inspections") -> DriftReport:
    """PSI and KS of the version's passes within ``scope`` (counted from ``source``) against its
    reference (from the inspection table: its first days start at any instant, not on an hour)."""
    reference, described = reference_histogram(session, model_version_id)
    recent = _pass_histogram(session, replace(scope, model_version_id=model_version_id), source)
    both = reference.sum() > 0 and recent.sum() > 0
    return DriftReport(model_version_id, described, reference, recent,
                       psi(reference, recent) if both else None, ks(reference, recent) if both else None,
                       warning_level)
