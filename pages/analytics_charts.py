"""Altair charts of the analytics page, built from the frames of ``core.analytics.dashboard``."""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd

from core.analytics.drift import FINE_BINS, PSI_BINS, DriftReport

RED, GREY, BLUE = "#cf222e", "#8c959f", "#0969da"
GRAIN_FORMAT = {"hour": "%d %b %H:00", "day": "%d %b", "week": "week of %d %b"}


def defect_rate_over_time(frame: pd.DataFrame, grain: str) -> alt.LayerChart:
    """Inspections per bucket as bars, the defect rate as a line; the tooltip gives the counts."""
    time_format = GRAIN_FORMAT[grain]
    base = alt.Chart(frame).encode(x=alt.X("bucket:T", title=None, axis=alt.Axis(format=time_format)))
    tooltip = [alt.Tooltip("bucket:T", title=grain, format=time_format), alt.Tooltip("inspections:Q", format=","),
               alt.Tooltip("failed:Q", format=","), alt.Tooltip("to_review:Q", title="sent to review", format=","),
               alt.Tooltip("defect_rate:Q", title="defect rate", format=".2%")]
    bars = base.mark_bar(color=GREY, opacity=0.35).encode(y=alt.Y("inspections:Q", title="Inspections"),
                                                          tooltip=tooltip)
    line = base.mark_line(point=alt.OverlayMarkDef(color=RED), color=RED).encode(
        y=alt.Y("defect_rate:Q", title="Defect rate", axis=alt.Axis(format="%")), tooltip=tooltip)
    return alt.layer(bars, line).resolve_scale(y="independent").properties(height=260)


def pareto(frame: pd.DataFrame) -> alt.LayerChart:
    """Defects per class, most frequent first, with the cumulative share as a line."""
    order = frame["defect_class"].tolist()
    base = alt.Chart(frame).encode(x=alt.X("defect_class:N", sort=order, title=None, axis=alt.Axis(labelAngle=0)))
    tooltip = ["defect_class:N", alt.Tooltip("count:Q", format=","), alt.Tooltip("share:Q", format=".1%"),
               alt.Tooltip("cumulative_share:Q", title="cumulative", format=".1%")]
    bars = base.mark_bar(color=RED, opacity=0.8).encode(y=alt.Y("count:Q", title="Defects"), tooltip=tooltip)
    line = base.mark_line(point=alt.OverlayMarkDef(color="#24292f"), color="#24292f").encode(
        y=alt.Y("cumulative_share:Q", title="Cumulative share", axis=alt.Axis(format="%"),
                scale=alt.Scale(domain=[0, 1])), tooltip=tooltip)
    return alt.layer(bars, line).resolve_scale(y="independent").properties(height=260)


def confusion(frame: pd.DataFrame) -> alt.LayerChart:
    """Model's label (rows) against the operator's verdict (columns) for reviewed inspections."""
    base = alt.Chart(frame).encode(x=alt.X("operator:N", title="Operator's verdict", axis=alt.Axis(labelAngle=0)),
                                   y=alt.Y("model:N", title="Model's label"))
    cells = base.mark_rect().encode(color=alt.Color("count:Q", scale=alt.Scale(scheme="blues"), legend=None),
                                    tooltip=["model:N", "operator:N", alt.Tooltip("count:Q", format=",")])
    text = base.mark_text(fontSize=13).encode(
        text=alt.Text("count:Q", format=","),
        color=alt.condition(alt.datum.count > frame["count"].max() / 2, alt.value("white"), alt.value("black")))
    return alt.layer(cells, text).properties(height=260)


def scores_over_time(frame: pd.DataFrame, grain: str) -> alt.Chart:
    """How many inspections fell in each defect-score band per time bucket (a heat map)."""
    time_format = GRAIN_FORMAT[grain]
    frame = frame.assign(bucket_end=frame["bucket"] + pd.Timedelta(**{f"{grain}s": 1}))
    return alt.Chart(frame).mark_rect().encode(
        x=alt.X("bucket:T", title=None, axis=alt.Axis(format=time_format)),
        x2="bucket_end:T",
        y=alt.Y("score_from:Q", title="Defect score", scale=alt.Scale(domain=[0, 1])),
        y2="score_to:Q",
        color=alt.Color("count:Q", scale=alt.Scale(scheme="viridis", type="sqrt"), title="Inspections"),
        tooltip=[alt.Tooltip("bucket:T", title=grain, format=time_format),
                 alt.Tooltip("score_from:Q", title="score from", format=".2f"),
                 alt.Tooltip("score_to:Q", title="to", format=".2f"), alt.Tooltip("count:Q", format=",")],
    ).properties(height=260)


def latency(frame: pd.DataFrame) -> alt.Chart:
    return alt.Chart(frame).mark_bar(color=BLUE, opacity=0.8).encode(
        x=alt.X("from_ms:Q", bin=alt.Bin(binned=True), title="Latency (ms)"),
        x2="to_ms:Q",
        y=alt.Y("count:Q", title="Inspections"),
        tooltip=[alt.Tooltip("from_ms:Q", title="from ms", format=".1f"),
                 alt.Tooltip("to_ms:Q", title="to ms", format=".1f"), alt.Tooltip("count:Q", format=",")],
    ).properties(height=260)


def drift(report: DriftReport) -> alt.Chart:
    """Share of passes per score band (the PSI's bands): reference against the selected period."""
    width = 1 / PSI_BINS
    rows = []
    for name, counts in (("reference", report.reference), ("selected period", report.recent)):
        total = counts.sum()
        coarse = counts.reshape(PSI_BINS, FINE_BINS // PSI_BINS).sum(axis=1)
        share = coarse / total if total else np.zeros(PSI_BINS)
        rows += [{"scores": name, "score_from": i * width, "score_to": (i + 1) * width, "share": float(s)}
                 for i, s in enumerate(share)]
    frame = pd.DataFrame(rows)
    frame = frame[frame.groupby("score_from")["share"].transform("sum") > 0]  # only bands that hold passes
    frame["band"] = frame["score_from"].map(lambda x: f"{x:.2f}")
    return alt.Chart(frame).mark_bar().encode(
        x=alt.X("band:N", title="Defect score of passes (band start)", axis=alt.Axis(labelAngle=0)),
        xOffset=alt.XOffset("scores:N", sort=["reference", "selected period"]),
        y=alt.Y("share:Q", title="Share of passes", axis=alt.Axis(format="%")),
        color=alt.Color("scores:N", scale=alt.Scale(domain=["reference", "selected period"], range=[GREY, RED]),
                        title=None, legend=alt.Legend(orient="top")),
        tooltip=["scores:N", alt.Tooltip("score_from:Q", title="from", format=".2f"),
                 alt.Tooltip("score_to:Q", title="to", format=".2f"), alt.Tooltip("share:Q", format=".1%")],
    ).properties(height=260)
