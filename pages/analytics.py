"""Analytics: inspections and defect rate per day for the selected tool."""

import altair as alt
import streamlit as st

from core.analytics import daily_stats, default_range
from pages.common import require_tool, studio

st.title("Analytics")
tool = require_tool()

start_default, end_default = default_range(14)
period = st.date_input("Period (UTC)", value=(start_default, end_default))
if not isinstance(period, tuple) or len(period) != 2:
    st.info("Pick a start and an end date.")
    st.stop()
frame = daily_stats(studio(), tool.name, period[0], period[1])
if frame.empty:
    st.info("No inspections in this period.")
    st.stop()

total, failed, to_review = int(frame["inspections"].sum()), int(frame["failed"].sum()), int(frame["to_review"].sum())
kpis = st.columns(3)
kpis[0].metric("Inspections", f"{total:,}")
kpis[1].metric("Defect rate", f"{failed / total:.1%}")
kpis[2].metric("Sent to review", f"{to_review / total:.1%}")

base = alt.Chart(frame).encode(x=alt.X("day:T", title="Day"))
bars = base.mark_bar(opacity=0.35, size=18).encode(
    y=alt.Y("inspections:Q", title="Inspections"),
    tooltip=["day:T", "inspections:Q", "failed:Q", alt.Tooltip("defect_rate:Q", format=".1%")],
)
line = base.mark_line(point=True, color="#cf222e").encode(
    y=alt.Y("defect_rate:Q", title="Defect rate", axis=alt.Axis(format="%")),
)
st.altair_chart(alt.layer(bars, line).resolve_scale(y="independent"), width="stretch")
st.dataframe(frame, hide_index=True, column_config={
    "day": st.column_config.DateColumn("Day"),
    "inspections": st.column_config.NumberColumn("Inspections"),
    "failed": st.column_config.NumberColumn("Failed"),
    "to_review": st.column_config.NumberColumn("Sent to review"),
    "defect_rate": st.column_config.NumberColumn("Defect rate", format="percent"),
})
