"""Analytics: KPIs against the previous period, defect rate, Pareto, agreement, scores, latency, drift,
recent inspections and CSV export of whatever the filters select. Every figure is aggregated in SQL."""

import tempfile

import streamlit as st

from core.analytics import default_range
from core.analytics.dashboard import filter_options, load_dashboard
from core.analytics.drift import DEFAULT_WARNING_PSI
from core.analytics.export import csv_chunks
from core.analytics.filters import AnalyticsFilter, parse_shifts, save_shifts
from core.analytics.thumbnails import thumbnail_uri
from core.errors import StudioError
from core.heatmap import inspection_heatmap
from pages import analytics_charts as charts
from pages.common import require_tool, studio
from pages.identity import current_reviewer

DEFAULT_DAYS = 30
ALL = "All"

st.title("Analytics")
tool = require_tool()
options = filter_options(studio(), tool.name)

# --- filters ---------------------------------------------------------------------------------------
row = st.columns([2.2, 1.1, 1.3, 1.2, 1])
period = row[0].date_input("Period (UTC days)", value=default_range(DEFAULT_DAYS), key="analytics-period")
station = row[1].selectbox("Station", [ALL, *options.stations], key="analytics-station")
versions = dict(options.versions)
version = row[2].selectbox("Model version", [None, *versions], key="analytics-version",
                           format_func=lambda v: ALL if v is None else versions[v])
shift = row[3].selectbox("Shift", [ALL, *(s.name for s in options.shifts)], key="analytics-shift",
                         format_func=lambda name: name if name == ALL else
                         str(next(s for s in options.shifts if s.name == name)))
grain = row[4].selectbox("Time buckets", ["hour", "day", "week"], index=1, key="analytics-grain")

with st.expander("Shifts and drift warning"):
    left, right = st.columns(2)
    with left.form("analytics-shifts"):
        text = st.text_input("Shifts of this tool (UTC hours, start-end)",
                             value=", ".join(str(s) for s in options.shifts), key="analytics-shifts-text",
                             help="e.g. 'early 6-14, late 14-22, night 22-6'; a shift may run past midnight")
        if st.form_submit_button("Save shifts"):
            try:
                save_shifts(studio(), tool.name, parse_shifts(text), current_reviewer())
            except StudioError as error:
                st.error(str(error))
            else:
                st.rerun()
    warning_psi = right.number_input(
        "Drift warning at PSI ≥", min_value=0.01, max_value=100.0, value=DEFAULT_WARNING_PSI, step=0.05,
        key="analytics-psi", help="Population stability index: < 0.1 stable, 0.1-0.25 moderate, > 0.25 large shift")

if not isinstance(period, tuple) or len(period) != 2:
    st.info("Pick a start and an end date.")
    st.stop()
flt = AnalyticsFilter(tool.name, period[0], period[1], station=None if station == ALL else station,
                      model_version_id=version, shift=None if shift == ALL else shift)
try:
    with st.spinner("Aggregating inspections ..."):
        board = load_dashboard(studio(), flt, grain=grain, warning_psi=warning_psi)
except StudioError as error:
    st.error(str(error))
    st.stop()
if board.kpis.inspections == 0:
    st.info("No inspections in this period.")
    st.stop()


# --- KPIs ------------------------------------------------------------------------------------------
def _delta(now: float | None, before: float | None, kind: str) -> str | None:
    if now is None or before is None:
        return None
    if kind == "percent":
        return f"{(now - before) * 100:+.1f} pp"
    if kind == "ms":
        return f"{now - before:+.1f} ms"
    return f"{now - before:+,.0f}"


def _show(value: float | None, kind: str) -> str:
    if value is None:
        return "–"
    return {"percent": f"{value:.1%}", "ms": f"{value:.1f} ms"}.get(kind, f"{value:,.0f}")


now, before = board.kpis, board.previous
previous_period = flt.previous()
st.caption(f"{flt.start:%d %b %Y} to {flt.end:%d %b %Y} ({flt.days} days) · change against "
           f"{previous_period.start:%d %b} to {previous_period.end:%d %b %Y}")
KPI_ROWS: list[tuple[str, str, str, str, str]] = [
    ("Inspections", "inspections", "count", "normal", "parts inspected"),
    ("Defect rate", "defect_rate", "percent", "inverse", "share of inspections the model failed"),
    ("Review rate", "review_rate", "percent", "inverse", "share of inspections sent to an operator"),
    ("Agreement", "agreement", "percent", "normal",
     f"model-operator agreement: share of the {now.reviewed:,} reviewed inspections where the operator "
     "gave the model's label"),
    ("Median latency", "latency_median_ms", "ms", "inverse", "median time to inspect one part"),
    ("p95 latency", "latency_p95_ms", "ms", "inverse", "95th percentile of the time to inspect one part"),
]
for column, (label, field, kind, colour, help_text) in zip(st.columns(len(KPI_ROWS)), KPI_ROWS, strict=True):
    value, old = getattr(now, field), getattr(before, field)
    column.metric(label, _show(value, kind), _delta(value, old, kind), delta_color=colour, help=help_text)

# --- charts ----------------------------------------------------------------------------------------
left, right = st.columns(2)
with left:
    st.subheader("Defect rate over time")
    st.altair_chart(charts.defect_rate_over_time(board.rate_over_time, grain), width="stretch")
with right:
    st.subheader("Pareto of defect classes")
    if board.pareto.empty:
        st.info("No defects in this selection.")
    else:
        st.altair_chart(charts.pareto(board.pareto), width="stretch")
        st.caption("Operator's verdict where reviewed, otherwise the model's label of a failed part.")

left, right = st.columns(2)
with left:
    st.subheader("Model vs operator")
    if board.confusion.empty:
        st.info("No reviewed inspections in this selection.")
    else:
        st.altair_chart(charts.confusion(board.confusion), width="stretch")
with right:
    st.subheader("Score distribution over time")
    st.altair_chart(charts.scores_over_time(board.scores_over_time, grain), width="stretch")

left, right = st.columns(2)
with left:
    st.subheader("Latency")
    st.altair_chart(charts.latency(board.latency), width="stretch")
with right:
    st.subheader("Drift of pass scores")
    drift = board.drift
    if drift is None:
        st.info("The tool has no active model: pick a model version to see its drift.")
    elif drift.psi is None:
        st.info(f"Not enough scores to compare: {drift.n_recent:,} passes in the selection, "
                f"{drift.n_reference:,} in the reference ({drift.reference_source}).")
    else:
        cols = st.columns(3)
        cols[0].metric("PSI", f"{drift.psi:.3f}", help="population stability index over 20 score bands")
        cols[1].metric("KS", f"{drift.ks:.3f}", help="largest gap between the two cumulative distributions")
        cols[2].metric("Passes compared", f"{drift.n_recent:,}", help=f"reference: {drift.n_reference:,} scores")
        if drift.drifted:
            st.warning(f"Drift: PSI {drift.psi:.3f} ≥ {drift.warning_level:g}. The pass scores of v"
                       f"{drift.model_version_id} moved away from its reference: check lighting, camera and parts.")
        elif not drift.reliable:
            st.info("Few scores on one side: read the statistics with care.")
        st.altair_chart(charts.drift(drift), width="stretch")
        st.caption(f"Passes of v{drift.model_version_id} in the selection against the reference: "
                   f"{drift.reference_source}.")

# --- recent inspections ------------------------------------------------------------------------------
st.subheader("Recent inspections")
recent = board.recent.copy()
recent["thumbnail"] = [thumbnail_uri(studio(), key) for key in recent["image_key"]]
recent["verdict"] = recent["verdict"].fillna("")
table = recent[["thumbnail", "id", "created_at", "station", "decision", "label", "score", "verdict", "latency_ms"]]
selection = st.dataframe(
    table, hide_index=True, width="stretch", height=300, on_select="rerun", selection_mode="single-row",
    key="analytics-recent",
    column_config={
        "thumbnail": st.column_config.ImageColumn("Image", width="small"),
        "id": st.column_config.NumberColumn("#", format="%d"),
        "station": st.column_config.TextColumn("Station"),
        "created_at": st.column_config.DatetimeColumn("When (UTC)", format="YYYY-MM-DD HH:mm"),
        "decision": st.column_config.TextColumn("Model"),
        "label": st.column_config.TextColumn("Class"),
        "score": st.column_config.ProgressColumn("Defect score", min_value=0.0, max_value=1.0, format="%.2f"),
        "verdict": st.column_config.TextColumn("Operator"),
        "latency_ms": st.column_config.NumberColumn("ms", format="%.0f"),
    },
)
rows = selection.selection.rows if selection else []
if rows:
    chosen = recent.iloc[rows[0]]
    st.markdown(f"**Inspection #{chosen['id']}** · {chosen['created_at']:%Y-%m-%d %H:%M} UTC · "
                f"{chosen['decision'].upper()} {chosen['label']} ({chosen['score']:.2f})"
                + (f" · operator: {chosen['verdict']}" if chosen["verdict"] else ""))
    heatmap = inspection_heatmap(studio(), int(chosen["id"]))  # the inspecting classifier's defect map
    shown = st.columns(2)
    if isinstance(chosen["thumbnail"], str):  # the image was kept and is readable
        shown[0].image(studio().images.viewable(chosen["image_key"]), caption="Image", width="stretch")
    else:
        shown[0].info("The image of this inspection was not kept (passes are not stored).")
    if heatmap is not None:
        shown[1].image(heatmap, caption="Defect heatmap (red: where the classifier saw a defect)", width="stretch")
else:
    st.caption("Select a row to see its image and the classifier's defect heatmap.")


# --- export ----------------------------------------------------------------------------------------
def _export() -> object:
    """The CSV written chunk by chunk to a temporary file (the database streams the rows)."""
    handle = tempfile.TemporaryFile("w+b")
    for chunk in csv_chunks(studio(), flt):
        handle.write(chunk.encode())
    handle.seek(0)
    return handle


st.download_button(f"Export {now.inspections:,} inspections (CSV)", _export, mime="text/csv",
                   file_name=f"{tool.name}-{flt.start}-{flt.end}.csv", icon=":material/download:", on_click="ignore")

# --- per station and per line (a line: the station name up to its first "/") -------------------------
st.subheader("Stations and lines")
left, right = st.columns(2)
left.dataframe(board.stations, hide_index=True, width="stretch")
right.dataframe(board.lines, hide_index=True, width="stretch")
