"""Fleet: every station of the plant from its heartbeat — host, software, recipe, model versions
per tool, fps, outbox backlog, state — red when silent. Read-only: stations write their own rows."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.fleet.heartbeat import SILENT_PERIODS, fleet
from pages.common import studio

st.title("Fleet")
rows = fleet(studio())
if not rows:
    st.info("No station has sent a heartbeat yet. Stations register themselves when they start "
            "(`python -m core station run`, see the README, *Plant deployment*).")
    st.stop()


def _status(row: dict) -> str:
    if row["silent"]:
        return "🔴 silent"
    return "🟠 degraded" if row["state"] == "degraded" else "🟢 ok"


silent = [r["name"] for r in rows if r["silent"]]
degraded = [r for r in rows if not r["silent"] and r["state"] == "degraded"]
columns = st.columns(3)
columns[0].metric("Stations", len(rows))
columns[1].metric("Silent", len(silent))
columns[2].metric("Degraded", len(degraded))
if silent:
    st.error(f"Silent for more than {SILENT_PERIODS} heartbeat periods: {', '.join(silent)}. The station "
             "stopped, its PC is off, or it cannot reach the database: then it keeps inspecting and spools its "
             "inspections on its own disk; it beats again once it can, saying how many still wait.")
for row in degraded:
    st.warning(f"**{row['name']}** is degraded: {row['reason']}")

table = pd.DataFrame([{
    "station": r["name"], "status": _status(r), "host": r["host"], "software": r["software"],
    "recipe": r["recipe"] or "",
    "models": "; ".join(f"{tool}: " + ", ".join(f"{m} v{v}" for m, v in versions.items())
                        for tool, versions in (r["models"] or {}).items()),
    "fps": r["fps"], "backlog": r["backlog"], "last seen (UTC)": f"{r['last_seen']:%Y-%m-%d %H:%M:%S}",
    "age (s)": r["age_s"], "reason": r["reason"] or "",
} for r in rows])


def _red(row: pd.Series) -> list[str]:
    colour = "color: #c62828" if row["status"].endswith("silent") else ""
    return [colour] * len(row)


shown = table.style.apply(_red, axis=1).format({"fps": "{:.1f}", "age (s)": "{:.0f}"}, na_rep="")  # not 6 decimals
st.dataframe(shown, hide_index=True, width="stretch")
st.caption("Stations beat every few seconds; a promotion or recipe switch reaches them within seconds "
           "(LISTEN / NOTIFY on PostgreSQL, polling otherwise). This page does not refresh by itself: rerun it.")
