"""Everything the analytics page shows for one filter, computed by the database in a few grouped
queries: KPIs against the previous period, defect rate over time, Pareto of defect classes,
model-vs-operator confusion, score distributions over time, latency histogram, drift, recent inspections."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy.orm import Session

from core.analytics.drift import DEFAULT_WARNING_PSI, DriftReport, drift_report
from core.analytics.filters import AnalyticsFilter, Shift, shifts_of
from core.studio import Studio
from core.tools import require_tool
from storage import analytics_queries as q
from storage import repository as repo
from storage.analytics_queries import RECENT_COLUMNS, Grain, InspectionScope
from storage.tables import Inspection

SCORE_BINS = 20
LATENCY_BINS = 30
RECENT_LIMIT = 50


@dataclass(frozen=True)
class Kpis:
    """Headline figures of a period; rates are None without inspections (or reviews for agreement)."""

    inspections: int
    defect_rate: float | None
    review_rate: float | None
    reviewed: int
    agreement: float | None
    latency_median_ms: float | None
    latency_p95_ms: float | None


@dataclass(frozen=True)
class Dashboard:
    filter: AnalyticsFilter
    grain: Grain
    kpis: Kpis
    previous: Kpis
    rate_over_time: pd.DataFrame  # bucket, inspections, failed, to_review, defect_rate
    pareto: pd.DataFrame  # defect_class, count, share, cumulative_share
    confusion: pd.DataFrame  # model, operator, count
    scores_over_time: pd.DataFrame  # bucket, score_from, score_to, count
    latency: pd.DataFrame  # from_ms, to_ms, count
    drift: DriftReport | None
    recent: pd.DataFrame  # RECENT_COLUMNS


@dataclass(frozen=True)
class FilterOptions:
    """What the filters of a tool can choose from."""

    stations: list[str]
    versions: list[tuple[int, str]]  # (id, "v3 classifier (active)"), newest first
    shifts: list[Shift]


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def kpis(session: Session, scope: InspectionScope) -> Kpis:
    """Counts in one grouped pass; exact median and p95 latency reading two rows each."""
    totals = q.counts(session, scope)
    n = totals.inspections
    return Kpis(
        inspections=n,
        defect_rate=_ratio(totals.failed, n),
        review_rate=_ratio(totals.to_review, n),
        reviewed=totals.reviewed,
        agreement=_ratio(totals.agreed, totals.reviewed),
        latency_median_ms=q.percentile(session, scope, Inspection.latency_ms, 0.5, n),
        latency_p95_ms=q.percentile(session, scope, Inspection.latency_ms, 0.95, n),
    )


def _bucket_times(values: list[Any]) -> pd.Series:
    return pd.to_datetime(pd.Series(values, dtype=object), utc=False) if values else pd.Series([], dtype="datetime64[ns]")


def rate_over_time(session: Session, scope: InspectionScope, grain: Grain) -> pd.DataFrame:
    rows = q.rate_over_time(session, scope, grain)
    frame = pd.DataFrame(rows, columns=["bucket", "inspections", "failed", "to_review"])
    frame["bucket"] = _bucket_times(frame["bucket"].tolist())
    frame["defect_rate"] = (frame["failed"] / frame["inspections"]).astype(float)
    return frame


def pareto(session: Session, scope: InspectionScope, good_class: str) -> pd.DataFrame:
    frame = pd.DataFrame(q.defect_classes(session, scope, good_class), columns=["defect_class", "count"])
    total = frame["count"].sum()
    frame["share"] = (frame["count"] / total).astype(float) if total else pd.Series(dtype=float)
    frame["cumulative_share"] = frame["share"].cumsum()
    return frame


def scores_over_time(session: Session, scope: InspectionScope, grain: Grain) -> pd.DataFrame:
    width = 1 / SCORE_BINS
    rows = q.histogram_over_time(session, scope, Inspection.score, grain, 0.0, width, SCORE_BINS)
    frame = pd.DataFrame(rows, columns=["bucket", "bin", "count"])
    frame["bucket"] = _bucket_times(frame["bucket"].tolist())
    frame["score_from"] = frame["bin"].astype(float) * width
    frame["score_to"] = frame["score_from"] + width
    return frame[["bucket", "score_from", "score_to", "count"]].sort_values(["bucket", "score_from"],
                                                                          ignore_index=True)


def latency_histogram(session: Session, scope: InspectionScope) -> pd.DataFrame:
    """``LATENCY_BINS`` equal bins from the fastest to the slowest inspection (bounds read first)."""
    bounds = q.value_range(session, scope, Inspection.latency_ms)
    if bounds is None:
        return pd.DataFrame({"from_ms": [], "to_ms": [], "count": []})
    low, high = bounds
    width = (high - low) / LATENCY_BINS or 1.0
    counts = q.histogram(session, scope, Inspection.latency_ms, low, width, LATENCY_BINS)
    edges = low + width * np.arange(LATENCY_BINS + 1)
    return pd.DataFrame({"from_ms": edges[:-1], "to_ms": edges[1:], "count": counts})


def load_dashboard(studio: Studio, flt: AnalyticsFilter, grain: Grain = "day",
                   warning_psi: float = DEFAULT_WARNING_PSI, recent_limit: int = RECENT_LIMIT) -> Dashboard:
    """All the page's charts and figures for ``flt`` in one transaction (the filter options apart)."""
    with studio.transaction() as session:
        tool = require_tool(session, flt.tool)
        scope = flt.scope(session, tool)
        drift_version = flt.model_version_id or tool.active_model_id
        confusion_rows = q.confusion(session, scope)
        return Dashboard(
            filter=flt,
            grain=grain,
            kpis=kpis(session, scope),
            previous=kpis(session, flt.previous().scope(session, tool)),
            rate_over_time=rate_over_time(session, scope, grain),
            pareto=pareto(session, scope, tool.good_class),
            confusion=pd.DataFrame(confusion_rows, columns=["model", "operator", "count"]),
            scores_over_time=scores_over_time(session, scope, grain),
            latency=latency_histogram(session, scope),
            drift=drift_report(session, scope, drift_version, warning_psi) if drift_version else None,
            recent=pd.DataFrame(q.recent(session, scope, recent_limit), columns=list(RECENT_COLUMNS)),
        )


def filter_options(studio: Studio, tool_name: str) -> FilterOptions:
    """The tool's stations, model versions and shifts."""
    with studio.transaction() as session:
        tool = require_tool(session, tool_name)
        versions = [(v.id, f"v{v.id} {v.kind}{' (active)' if v.id == tool.active_model_id else ''}")
                    for v in repo.list_model_versions(session, tool.id)]
        return FilterOptions(q.stations(session, tool.id), versions, shifts_of(tool))
