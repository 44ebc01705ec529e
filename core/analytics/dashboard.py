"""Everything the analytics page shows for one filter, computed by the database in a few grouped
queries: KPIs against the previous period, defect rate over time, Pareto of defect classes,
model-vs-operator confusion, score distributions over time, latency histogram, drift, recent inspections.

One pass groups the inspections by (time bucket, decision, score band): the counts, the defect rate
over time and the score distributions come from it. Review outcomes come from the review rollup (or the review side).
pandas only reshapes these small results.

Two sources give the same figures (see docs/ARCHITECTURE.md, "Analytics at plant scale"): the
``rollup`` (default; hourly counts kept in step with every inspection) and the ``inspections``
table itself (the reference the tests and the benchmark compare with). They differ only in the latency
median and p95: exact from the table (``ORDER BY ... LIMIT 2 OFFSET k``), from the logarithmic latency
bins of the rollup within ``LATENCY_QUANTILE_BOUND`` of ``1 + ms`` (the bin's geometric centre).
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
from storage.analytics_queries import RECENT_COLUMNS, Grain, InspectionScope, Source
from storage.tables import Inspection

SCORE_BINS = 20
LATENCY_QUANTILE_BOUND = math.exp(0.5 / q.LATENCY_BINS_PER_E) - 1  # 2.53 %: half a latency bin
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
    stations: pd.DataFrame  # STATION_COLUMNS, one row per station
    lines: pd.DataFrame  # STATION_COLUMNS with "line" for "station", one row per line


STATION_COLUMNS = ["station", "inspections", "failed", "to_review", "defect_rate", "review_rate"]


def line_of(station: str) -> str:
    """The production line of a station: its name up to the first ``/`` (``"L1/st3"`` is on line
    ``"L1"``); a station named without ``/`` is a line of its own."""
    return station.split("/", 1)[0]


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
    """Latency figures: counts per logarithmic bin, median and p95 (numpy's linear interpolation)."""

    bins: dict[int, int]
    median: float | None
    p95: float | None


def bin_centre(position: int) -> float:
    """The latency (ms) at the geometric centre of a latency bin (in ``1 + ms``)."""
    return math.exp((position + 0.5) / q.LATENCY_BINS_PER_E) - 1


def bin_edge(position: int) -> float:
    """The lowest latency (ms) of a latency bin."""
    return math.exp(position / q.LATENCY_BINS_PER_E) - 1


def _values_at(session: Session, scope: InspectionScope, source: Source, bins: dict[int, int],
               offset: int) -> list[float]:
    """The latencies of ranks ``offset`` and ``offset + 1`` (0-based, ascending): read from the table,
    or the centres of the bins holding those ranks."""
    if source == "inspections":
        return q.ordered_values(session, scope, Inspection.latency_ms, offset, 2)
    values, seen = [], 0
    for position in sorted(bins):
        seen += bins[position]
        while len(values) < 2 and offset + len(values) < seen:
            values.append(bin_centre(position))
    return values


def _quantile(session: Session, scope: InspectionScope, source: Source, bins: dict[int, int], q_: float) -> float:
    """The ``q_`` quantile of the latency, from the two values around it."""
    position = q_ * (sum(bins.values()) - 1)
    low = math.floor(position)
    values = _values_at(session, scope, source, bins, low)
    if position == low or len(values) == 1:
        return values[0]
    return values[0] + (position - low) * (values[1] - values[0])


def _latency(session: Session, scope: InspectionScope, source: Source) -> _Latency:
    bins = q.latency_bins(session, scope, source)
    if not bins:
        return _Latency(bins, None, None)
    return _Latency(bins, _quantile(session, scope, source, bins, 0.5), _quantile(session, scope, source, bins, 0.95))


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


def _outcomes(session: Session, scope: InspectionScope, source: Source) -> pd.DataFrame:
    return pd.DataFrame(q.review_outcomes(session, scope, source), columns=["decision", "label", "verdict", "count"])


def kpis(session: Session, scope: InspectionScope, source: Source = "rollup") -> Kpis:
    """The headline figures of a scope: counts per decision, review outcomes, latency quantiles."""
    return _kpis(q.decisions(session, scope, source), _outcomes(session, scope, source),
                 _latency(session, scope, source))


def _bucket_times(values: list[Any]) -> pd.Series:
    return pd.to_datetime(pd.Series(values, dtype=object)) if values else pd.Series([], dtype="datetime64[ns]")


def _cube(session: Session, scope: InspectionScope, grain: Grain, source: Source) -> pd.DataFrame:
    frame = pd.DataFrame(q.decision_score_cube(session, scope, grain, SCORE_BINS, source),
                         columns=["bucket", "decision", "bin", "count"])
    frame["bucket"] = _bucket_times(frame["bucket"].tolist())
    return frame


def rate_over_time(cube: pd.DataFrame) -> pd.DataFrame:
    """Per bucket: inspections, failed, to review and the defect rate."""
    counts = cube["count"]
    parts = pd.DataFrame({"bucket": cube["bucket"], "inspections": counts,
                          "failed": counts.where(cube["decision"] == "fail", 0),
                          "to_review": counts.where(cube["decision"] == "review", 0)})
    frame = parts.groupby("bucket", as_index=False).sum().sort_values("bucket", ignore_index=True)
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


def latency_histogram(latency: _Latency) -> pd.DataFrame:
    """The logarithmic latency bins (about 5 % wide) from the fastest to the slowest inspection's."""
    if not latency.bins:
        return pd.DataFrame({"from_ms": [], "to_ms": [], "count": []})
    positions = np.arange(min(latency.bins), max(latency.bins) + 1)
    return pd.DataFrame({"from_ms": [bin_edge(int(b)) for b in positions],
                         "to_ms": [bin_edge(int(b) + 1) for b in positions],
                         "count": [latency.bins.get(int(b), 0) for b in positions]})


def _breakdown(rows: list[tuple[str, str, int]], by: str) -> pd.DataFrame:
    """Per station (or line): inspections, failed, to review and their rates."""
    frame = pd.DataFrame(rows, columns=[by, "decision", "count"])
    frame["failed"] = frame["count"].where(frame["decision"] == "fail", 0)
    frame["to_review"] = frame["count"].where(frame["decision"] == "review", 0)
    frame = frame.groupby(by, as_index=False)[["count", "failed", "to_review"]].sum().rename(
        columns={"count": "inspections"}).sort_values(by, ignore_index=True)
    frame["defect_rate"] = (frame["failed"] / frame["inspections"]).astype(float)
    frame["review_rate"] = (frame["to_review"] / frame["inspections"]).astype(float)
    return frame[[by, *STATION_COLUMNS[1:]]]


def station_breakdown(session: Session, scope: InspectionScope, source: Source) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The scope's figures per station and per line (see ``line_of``)."""
    rows = q.station_decisions(session, scope, source)
    return _breakdown(rows, "station"), _breakdown([(line_of(s), d, n) for s, d, n in rows], "line")


def load_dashboard(studio: Studio, flt: AnalyticsFilter, grain: Grain = "day",
                   warning_psi: float = DEFAULT_WARNING_PSI, recent_limit: int = RECENT_LIMIT,
                   source: Source = "rollup") -> Dashboard:
    """All the page's charts and figures for ``flt`` in one transaction (the filter options apart),
    counted from ``source`` (the figures are the same; see the module doc)."""
    with studio.transaction() as session:
        tool = require_tool(session, flt.tool)
        scope = flt.scope(session, tool)
        active = versions_repo.active_versions(session, tool.id)
        drift_version = flt.model_version_id or next((v.id for v in active.values()), None)
        cube = _cube(session, scope, grain, source)
        per_decision = cube.groupby("decision")["count"].sum().to_dict()
        outcomes = _outcomes(session, scope, source)
        latency = _latency(session, scope, source)
        per_station, per_line = station_breakdown(session, scope, source)
        return Dashboard(
            filter=flt,
            grain=grain,
            kpis=_kpis(per_decision, outcomes, latency),
            previous=kpis(session, flt.previous().scope(session, tool), source),
            rate_over_time=rate_over_time(cube),
            pareto=pareto(q.labels_of(session, scope, "fail", source), outcomes, tool.good_class),
            confusion=confusion(outcomes),
            scores_over_time=scores_over_time(cube),
            latency=latency_histogram(latency),
            drift=drift_report(session, scope, drift_version, warning_psi, source) if drift_version else None,
            recent=pd.DataFrame(q.recent(session, scope, recent_limit), columns=list(RECENT_COLUMNS)),
            stations=per_station,
            lines=per_line,
        )


def filter_options(studio: Studio, tool_name: str) -> FilterOptions:
    """The tool's stations, model versions and shifts."""
    with studio.transaction() as session:
        tool = require_tool(session, tool_name)
        versions = [(v.id, f"v{v.id} {v.method}{' (active)' if v.status == 'active' else ''}")
                    for v in repo.list_model_versions(session, tool.id)]
        return FilterOptions(q.stations(session, tool.id), versions, shifts_of(tool))
