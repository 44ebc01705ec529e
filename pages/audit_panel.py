"""The audit trail on the Models page: filters (tool, who, action, dates), the rows, "Verify chain" and a CSV
download. Everything is shown as plain text (data frames and st.text), never as HTML or Markdown."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pandas as pd
import streamlit as st

from core.audit import audit_log
from core.audit_trail import csv_text, verify
from pages.common import studio

ANY = "(any)"
VERIFY_RESULT = "audit-verify-result"


def _filters(tool_name: str) -> dict[str, object]:
    rows = audit_log(studio(), None, limit=None)
    left, middle, right, dates = st.columns(4)
    scope = left.selectbox("Tool", [f"this tool ({tool_name})", "all tools"], key="audit-tool")
    who = middle.selectbox("Who", [ANY, *sorted({r.actor for r in rows})], key="audit-who")
    action = right.selectbox("Action", [ANY, *sorted({r.action for r in rows})], key="audit-action")
    today = datetime.now(UTC).date()  # the trail's times are UTC
    chosen = dates.date_input("Dates (UTC)", (today - timedelta(days=30), today), key="audit-dates")
    start, end = (chosen + (chosen[0],))[:2] if isinstance(chosen, tuple) and chosen else (None, None)
    return {"tool_name": tool_name if scope.startswith("this tool") else None,
            "actor": None if who == ANY else who, "action": None if action == ANY else action,
            "since": _midnight(start), "until": _midnight(end, next_day=True)}


def _midnight(day: date | None, next_day: bool = False) -> datetime | None:
    if day is None:
        return None
    return datetime.combine(day + timedelta(days=1) if next_day else day, time())


def render_audit_panel(tool_name: str) -> None:
    """The trail, newest first, with its filters, the chain check and the CSV export."""
    st.subheader("Audit trail")
    filters = _filters(tool_name)
    entries = audit_log(studio(), limit=500, **filters)  # type: ignore[arg-type]
    if entries:
        st.dataframe(pd.DataFrame([{**e.as_dict(), "details": str(e.details)} for e in entries]), hide_index=True)
    else:
        st.caption("No entry matches these filters.")
    verify_column, export_column = st.columns(2)
    if verify_column.button("Verify chain", key="audit-verify",
                            help="recompute every row's hash and link: finds edited, deleted and inserted rows"):
        st.session_state[VERIFY_RESULT] = verify(studio())
    report = st.session_state.get(VERIFY_RESULT)
    if report is not None:
        (st.success if report.ok else st.error)(report.summary())
        for problem in report.problems:
            st.text(f"{problem.kind}: {problem.message}")
    export_column.download_button("Export CSV", csv_text(studio(), **filters), file_name="audit-trail.csv",  # type: ignore[arg-type]
                                  mime="text/csv", key="audit-csv")
