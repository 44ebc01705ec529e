"""Everything the analytics page shows for one filter, computed by the database in a few grouped
queries: KPIs against the previous period, defect rate over time, Pareto of defect classes,
model-vs-operator confusion, score distributions over time, latency histogram, drift, recent inspections.

One pass groups the inspections by (time bucket, decision, score band): the counts, the defect rate
over time, the score distributions and the latency range come from it. Reviews are read from the review
side (few rows); the exact latency median and p95 from ``ORDER BY ... LIMIT 2 OFFSET k``. pandas only
reshapes these small results.
"""

from __future__ import annotations

import math
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
from storage import versions as versions_repo
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
    """The page's figures for one filter; ``previous`` is the period of the same length just before."""

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


@dataclass(frozen=True)
class _Latency:
    """Exact latency figures: minimum, maximum, median and p95 (numpy's linear interpolation)."""

    low: float | None
    high: float | None
    median: float | None
    p95: float | None


def _quantile(session: Session, scope: InspectionScope, q_: float, n: int) -> float:
    """The ``q_`` quantile of the latency over ``n`` inspections, reading the two values around it."""
    position = q_ * (n - 1)
    low = math.floor(position)
    values = q.ordered_values(session, scope, Inspection.latency_ms, low, 2)
    if position == low or len(values) == 1:
        return values[0]
    return values[0] + (position - low) * (values[1] - values[0])


def _latency(session: Session, scope: InspectionScope, n: int, low: float | None = None,
             high: float | None = None) -> _Latency:
    if n == 0:
        return _Latency(None, None, None, None)
    return _Latency(low, high, _quantile(session, scope, 0.5, n), _quantile(session, scope, 0.95, n))


def _kpis(per_decision: dict[str, int], outcomes: pd.DataFrame, latency: _Latency) -> Kpis:
    n = sum(per_decision.values())
    reviewed = int(outcomes["count"].sum())
    agreed = int(outcomes.loc[outcomes["label"] == outcomes["verdict"], "count"].sum())
    return Kpis(
        inspections=n,
        defect_rate=_ratio(per_decision.get("fail", 0), n),
        review_rate=_ratio(per_decision.get("review", 0), n),
        reviewed=reviewed,
        agreement=_ratio(agreed, reviewed),
        latency_median_ms=latency.median,
        latency_p95_ms=latency.p95,
    )


def _outcomes(session: Session, scope: InspectionScope) -> pd.DataFrame:
    return pd.DataFrame(q.review_outcomes(session, scope), columns=["decision", "label", "verdict", "count"])


def kpis(session: Session, scope: InspectionScope) -> Kpis:
    """The headline figures of a scope: counts per decision, review outcomes, exact latency quantiles."""
    per_decision = q.decisions(session, scope)
    return _kpis(per_decision, _outcomes(session, scope), _latency(session, scope, sum(per_decision.values())))


def _bucket_times(values: list[Any]) -> pd.Series:
    return pd.to_datetime(pd.Series(values, dtype=object)) if values else pd.Series([], dtype="datetime64[ns]")


def _cube(session: Session, scope: InspectionScope, grain: Grain) -> pd.DataFrame:
    frame = pd.DataFrame(q.decision_score_cube(session, scope, grain, SCORE_BINS),
                         columns=["bucket", "decision", "bin", "count", "min_latency", "max_latency"])
    frame["bucket"] = _bucket_times(frame["bucket"].tolist())
    return frame


def rate_over_time(cube: pd.DataFrame) -> pd.DataFrame:
    """Per bucket: inspections, failed, to review and the defect rate."""
    counts = cube["count"]
    parts = pd.DataFrame({"bucket": cube["bucket"], "inspections": counts,
                          "failed": counts.where(cube["decision"] == "fail", 0),
                          "to_review": counts.where(cube["decision"] == "review", 0)})
    frame = parts.groupby("bucket", as_index=False).sum()
    frame["defect_rate"] = (frame["failed"] / frame["inspections"]).astype(float)
    return frame


def scores_over_time(cube: pd.DataFrame) -> pd.DataFrame:
    """Per bucket and score band of width 1 / SCORE_BINS: how many inspections."""
    width = 1 / SCORE_BINS
    frame = cube.groupby(["bucket", "bin"], as_index=False)["count"].sum()
    frame["score_from"] = frame["bin"].astype(float) * width
    frame["score_to"] = frame["score_from"] + width
    return frame[["bucket", "score_from", "score_to", "count"]].sort_values(["bucket", "score_from"],
                                                                          ignore_index=True)


def pareto(fails_by_label: dict[str, int], outcomes: pd.DataFrame, good_class: str) -> pd.DataFrame:
    """Defects per class, most frequent first: the operator's verdict where reviewed, the model's label
    of a failed part otherwise; parts judged good are not defects."""
    counts = pd.Series(fails_by_label, dtype="int64")
    reviewed_fails = outcomes[outcomes["decision"] == "fail"].groupby("label")["count"].sum()
    counts = counts.sub(reviewed_fails, fill_value=0).add(outcomes.groupby("verdict")["count"].sum(), fill_value=0)
    counts = counts[(counts > 0) & (counts.index != good_class)].astype(int)
    frame = pd.DataFrame({"defect_class": counts.index.astype(str), "count": counts.to_numpy()})
    frame = frame.sort_values(["count", "defect_class"], ascending=[False, True], ignore_index=True)
    frame["share"] = (frame["count"] / frame["count"].sum()).astype(float)
    frame["cumulative_share"] = frame["share"].cumsum()
    return frame


def confusion(outcomes: pd.DataFrame) -> pd.DataFrame:
    """Reviewed inspections per (model's label, operator's verdict)."""
    frame = outcomes.groupby(["label", "verdict"], as_index=False)["count"].sum()
    return frame.rename(columns={"label": "model", "verdict": "operator"}).sort_values(
        ["model", "operator"], ignore_index=True)


def latency_histogram(session: Session, scope: InspectionScope, latency: _Latency) -> pd.DataFrame:
    """``LATENCY_BINS`` equal bins from the fastest to the slowest inspection."""
    if latency.low is None or latency.high is None:
        return pd.DataFrame({"from_ms": [], "to_ms": [], "count": []})
    low, high = latency.low, latency.high
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
        active = versions_repo.active_versions(session, tool.id)
        drift_version = flt.model_version_id or next((v.id for v in active.values()), None)
        cube = _cube(session, scope, grain)
        per_decision = cube.groupby("decision")["count"].sum().to_dict()
        outcomes = _outcomes(session, scope)
        latency = _latency(session, scope, int(cube["count"].sum()), float(cube["min_latency"].min()),
                           float(cube["max_latency"].max()))
        return Dashboard(
            filter=flt,
            grain=grain,
            kpis=_kpis(per_decision, outcomes, latency),
            previous=kpis(session, flt.previous().scope(session, tool)),
            rate_over_time=rate_over_time(cube),
            pareto=pareto(q.labels_of(session, scope, "fail"), outcomes, tool.good_class),
            confusion=confusion(outcomes),
            scores_over_time=scores_over_time(cube),
            latency=latency_histogram(session, scope, latency),
            drift=drift_report(session, scope, drift_version, warning_psi) if drift_version else None,
            recent=pd.DataFrame(q.recent(session, scope, recent_limit), columns=list(RECENT_COLUMNS)),
        )


def filter_options(studio: Studio, tool_name: str) -> FilterOptions:
    """The tool's stations, model versions and shifts."""
    with studio.transaction() as session:
        tool = require_tool(session, tool_name)
        versions = [(v.id, f"v{v.id} {v.method}{' (active)' if v.status == 'active' else ''}")
                    for v in repo.list_model_versions(session, tool.id)]
        return FilterOptions(q.stations(session, tool.id), versions, shifts_of(tool))
