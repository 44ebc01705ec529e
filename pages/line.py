"""Line: each headless station's connections, signals, last events, outbox backlog, recipes, outputs
and the PLC register map; test-publish and trigger by hand. The stations run as their own service
(``python -m core station run``); this page reads their status and configures them."""

from __future__ import annotations

from datetime import datetime

import pandas as pd
import streamlit as st

from core.errors import StudioError
from core.line.cli import post_to_station
from core.line.handshake import register_map
from core.line.outputs import add_output, list_outputs, publish_test, remove_output
from core.line.overview import recent_events, station_rows
from core.line.recipes import activate_recipe, create_recipe, list_recipes
from core.tools import list_tools
from pages.common import studio
from pages.identity import current_reviewer

st.title("Line")
rows = station_rows(studio())
if not rows:
    st.info(
        "No station yet. Start one on the station PC, e.g. `python -m core station run --station line1 "
        "--tool TOOL --source 0 --modbus-port 5020` (see the README, *On the line*)."
    )
    st.stop()

names = [r["name"] for r in rows]
name = st.selectbox("Station", names, key="line-station")
row = next(r for r in rows if r["name"] == name)
status = row["status"]
beat = row["heartbeat_at"]
if row["running"]:
    st.success(f"**{name}** is running (heartbeat {beat:%H:%M:%S} UTC, pid {status.get('pid')}).")
else:
    st.warning(f"**{name}** is not running" + (f" (last heartbeat {beat:%Y-%m-%d %H:%M:%S} UTC)." if beat else "."))


def _state(ok: bool | None, text: str) -> str:
    return ("🟢 " if ok else "🔴 " if ok is False else "⚪ ") + text


connections = []
source = status.get("source") or {}
if source:
    connections.append(
        {
            "connection": f"camera ({source.get('kind')})",
            "where": source.get("source"),
            "state": _state(source.get("connected"), "frames" if source.get("connected") else "no frames"),
            "error": source.get("error") or "",
        }
    )
for proto in ("modbus", "opcua"):
    info = status.get(proto)
    if info:
        connections.append(
            {
                "connection": "PLC " + ("Modbus TCP" if proto == "modbus" else "OPC UA"),
                "where": str(info.get("port") or info.get("endpoint")),
                "state": _state(not info.get("error"), info.get("state", "")),
                "error": info.get("error") or "",
            }
        )
backlogs = {o.name: o for o in list_outputs(studio(), name)}
for out_name, info in (status.get("outputs") or {}).items():
    output = backlogs.get(out_name)
    connections.append(
        {
            "connection": f"output {out_name} ({output.kind if output else '?'})",
            "where": output.url if output else "",
            "state": _state(info.get("state") in ("connected", "ok", "idle"), str(info.get("state"))),
            "error": info.get("error") or "",
        }
    )
st.subheader("Connections")
if connections:
    st.dataframe(pd.DataFrame(connections), hide_index=True, width="stretch")
else:
    st.caption("No status yet.")
errors = status.get("errors") or []
if errors:
    with st.expander(f"Recent errors ({len(errors)})", expanded=row["running"]):
        for entry in reversed(errors):
            st.error(f"{entry['at']}: {entry['message']}")

left, right = st.columns(2)
with left:
    st.subheader("PLC signals")
    signals = status.get("signals") or {}
    if signals:
        st.dataframe(
            pd.DataFrame([{"signal": k, "value": int(v) if isinstance(v, bool) else v} for k, v in signals.items()]),
            hide_index=True,
            width="stretch",
            height=260,
        )
    if st.button("Trigger by hand", type="primary", disabled=not row["running"], width="stretch"):
        try:
            accepted = post_to_station(studio(), name, "/trigger").get("accepted")
            st.toast("Trigger accepted" if accepted else "Trigger refused (busy)")
        except StudioError as error:
            st.error(str(error))
    recipe = status.get("recipe")
    st.caption(
        f"Active recipe: **{recipe['name']}** (number {recipe['number']})"
        if recipe
        else f"Tools: {', '.join(status.get('tools') or []) or 'none'} (no recipe)"
    )
with right:
    st.subheader("Last events")
    events = recent_events(studio(), name, 15)
    if events:
        frame = pd.DataFrame(events).drop(columns=["event_id"])
        frame["time"] = [t.strftime("%H:%M:%S") if isinstance(t, datetime) else t for t in frame["time"]]
        st.dataframe(frame, hide_index=True, width="stretch", height=260)
    else:
        st.caption("No event yet.")

st.subheader("Outputs")
outputs = list_outputs(studio(), name)
if outputs:
    st.dataframe(
        pd.DataFrame([o.as_dict() for o in outputs]).drop(columns=["id", "station"]), hide_index=True, width="stretch"
    )
    cols = st.columns([3, 1, 1])
    chosen = cols[0].selectbox("Output", [o.name for o in outputs], key="line-output")
    if cols[1].button("Test publish", width="stretch"):
        result = publish_test(studio(), name, chosen, actor=current_reviewer())
        (st.success if result["ok"] else st.error)(
            "Delivered and confirmed." if result["ok"] else f"Not delivered: {result['error']}"
        )
    if cols[2].button("Remove", width="stretch"):
        remove_output(studio(), name, chosen, actor=current_reviewer())
        st.rerun()
with st.expander("Add an output"):
    with st.form("line-add-output", clear_on_submit=True):
        out_name = st.text_input("Name", placeholder="plant-broker")
        kind = st.radio("Kind", ["mqtt", "webhook"], horizontal=True)
        url = st.text_input("URL", placeholder="mqtt://broker.lan:1883/studio or https://mes.lan/hook")
        username = st.text_input("User name (MQTT)")
        secret = st.text_input("Password / HMAC key", type="password")
        if st.form_submit_button("Add output"):
            try:
                add_output(studio(), name, out_name, kind, url, username or None, secret or None,
                           actor=current_reviewer())
                st.rerun()
            except StudioError as error:
                st.error(str(error))

st.subheader("Recipes")
recipes = list_recipes(studio(), name)
if recipes:
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "number": r.number,
                    "name": r.name,
                    "tools": ", ".join(r.tool_names),
                    "active": "✔" if r.active else "",
                }
                for r in recipes
            ]
        ),
        hide_index=True,
        width="stretch",
    )
    pick = st.selectbox("Switch to", [r.name for r in recipes], key="line-recipe")
    if st.button("Activate recipe"):
        activate_recipe(studio(), name, pick, current_reviewer(), via="studio")
        st.success(f"Recipe {pick} is active; the running station follows within a second.")
else:
    st.caption("No recipe yet: add one below (or `python -m core recipes create ...`).")
with st.expander("New recipe"):
    with st.form("line-new-recipe", clear_on_submit=True):
        recipe_name = st.text_input("Product name", placeholder="bracket-a")
        number = st.number_input(
            "Number for the PLC",
            min_value=1,
            max_value=65535,
            value=max([r.number for r in recipes], default=0) + 1,
            step=1,
        )
        chosen_tools = st.multiselect("Tools", [t.name for t in list_tools(studio())])
        if st.form_submit_button("Create recipe"):
            try:
                create_recipe(studio(), name, recipe_name, int(number), chosen_tools, current_reviewer())
                st.rerun()
            except StudioError as error:
                st.error(str(error))

with st.expander("PLC register map (Modbus TCP; OPC UA uses the same names)"):
    for kind, entries in register_map().items():
        st.markdown(f"**{kind}**")
        st.dataframe(pd.DataFrame(entries), hide_index=True, width="stretch")
