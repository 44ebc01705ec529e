"""Review: one card at a time, made for a tablet. Tap what the part is; the next card follows at once."""

from __future__ import annotations

from datetime import datetime, time, timedelta

import pandas as pd
import streamlit as st

from core.errors import StudioError
from core.heatmap import inspection_heatmap
from core.reviews import (
    CLAIM_SECONDS,
    Card,
    Reviewer,
    correct_verdict,
    next_card,
    queue_counts,
    skip,
    submit_review,
    undo_review,
)
from core.tool_settings import tool_settings
from pages.common import require_tool, studio
from pages.identity import current_reviewer
from pages.signature import show_signatures, signature_field

SKIPPED, UNDO, MESSAGE = "review-skipped", "review-undo", "review-message"
SIGNATURE = "review-signature"  # the password field of a signed verdict
REASON_TEXT = {"disagreement": ("the models disagree", "red"), "uncertain": ("the model is unsure", "orange"),
               "degraded": ("decided by one model only", "violet"), "audit": ("random audit of a pass", "blue")}
BIG_BUTTONS = """<style>
.st-key-verdicts button, .st-key-controls button { min-height: 60px; font-size: 1.2rem; }
</style>"""

st.title("Review queue")
tool = require_tool()
reviewer = current_reviewer()
st.session_state.setdefault(SKIPPED, [])
st.session_state.setdefault(UNDO, [])

with st.sidebar.expander("Queue filters", expanded=False):
    every_tool = st.toggle("All tools", value=False, help="review every tool's queue, not only the selected tool")
    days = st.date_input("Inspected between", value=(), help="leave empty for any date")
tool_name = None if every_tool else tool.name
start = datetime.combine(days[0], time()) if len(days) >= 1 else None
end = datetime.combine(days[-1], time()) + timedelta(days=1) if len(days) == 2 else None


def _answer(card: Card, verdict: str, who: Reviewer) -> None:
    try:
        review_id = submit_review(studio(), card.inspection_id, verdict, who,
                                  signature_password=st.session_state.get(SIGNATURE) or None)
        st.session_state[UNDO].append(review_id)
        st.session_state[MESSAGE] = ("success", f"#{card.inspection_id}: {verdict}")
    except StudioError as error:
        st.session_state[MESSAGE] = ("error", str(error))
    st.session_state[SIGNATURE] = ""  # a password is used for one signature only


def _correction(who: Reviewer) -> None:
    """A signed verdict is never edited: a correction is a new signed record referring to it."""
    with st.expander("Correct a signed verdict"):
        inspection_id = st.number_input("Inspection #", min_value=1, step=1, key="correct-id")
        show_signatures(studio(), "inspection", int(inspection_id))
        verdict = st.selectbox("Correct class", tool.classes, key="correct-verdict")
        reason = st.text_input("Reason", key="correct-reason", max_chars=200)
        password = signature_field("correct-signature", "reviewed", "the correction")
        if st.button("Sign the correction", key="correct"):
            try:
                correct_verdict(studio(), int(inspection_id), verdict, who, reason, password)
            except StudioError as error:
                st.error(str(error))
            else:
                st.success(f"#{int(inspection_id)} corrected to {verdict}; the first signature stays on record.")


def _skip(card: Card, who: Reviewer) -> None:
    skip(studio(), card.inspection_id, who)
    st.session_state[SKIPPED].append(card.inspection_id)
    st.session_state[MESSAGE] = ("info", f"#{card.inspection_id} skipped (left for someone else)")


def _undo(who: Reviewer) -> None:
    review_id = st.session_state[UNDO].pop()
    try:
        inspection_id = undo_review(studio(), review_id, who)
        st.session_state[MESSAGE] = ("info", f"Verdict on #{inspection_id} undone")
    except StudioError as error:
        st.session_state[MESSAGE] = ("error", str(error))


st.html(BIG_BUTTONS)
_correction(reviewer)
card = next_card(studio(), reviewer, tool_name, start, end, exclude=st.session_state[SKIPPED])
kind, text = st.session_state.pop(MESSAGE, (None, None))
if kind == "error":
    st.error(text)
elif kind:
    st.toast(text)
counts = queue_counts(studio(), tool_name, start, end)
waiting = sum(counts.values())
if card is None:
    if waiting:
        st.info(f"{waiting} inspection(s) wait, held by another device or skipped by you. Claims expire after "
                f"{CLAIM_SECONDS:.0f} s without activity.")
        if st.session_state[SKIPPED] and st.button("Show my skipped cards again"):
            st.session_state[SKIPPED] = []
            st.rerun()
    else:
        st.success("Nothing to review: every flagged inspection has a verdict.")
    if st.session_state[UNDO]:
        st.button("Undo last verdict", key="undo-empty", on_click=_undo, args=(reviewer,), shortcut="U")
    st.stop()

st.caption(f"{waiting} inspection(s) waiting · " + " · ".join(f"{n} {reason}" for reason, n in counts.items() if n)
           + " · most urgent first, then oldest")
left, right = st.columns([3, 2], gap="large")
with left:
    show_heat = st.toggle("Heatmap", key="heatmap", help="where the model saw a defect (defect map)")
    picture = inspection_heatmap(studio(), card.inspection_id) if show_heat else None
    if show_heat and picture is None:
        st.caption("No defect map for this inspection (no image kept, or its model version is gone).")
    if picture is not None:
        st.image(picture, width="stretch")
    elif card.image_key and studio().images.exists(card.image_key):
        st.image(studio().images.viewable(card.image_key), width="stretch")
    else:
        st.warning("The image of this inspection was not kept.")
with right:
    reason, colour = REASON_TEXT[card.reason]
    st.markdown(f"**Inspection #{card.inspection_id}** · {card.tool} · {card.created_at:%Y-%m-%d %H:%M} UTC · "
                f"{card.station}")
    st.badge(reason, color=colour)
    st.write("What is this part?")
    if card.decision == "fail" and tool_settings(studio(), card.tool).signed_review:
        signature_field(SIGNATURE, "reviewed", f"your verdict on inspection #{card.inspection_id}")
    with st.container(key="verdicts"):
        for index, name in enumerate(card.classes, start=1):
            st.button(name.capitalize(), key=f"verdict-{name}",
                      type="primary" if name == card.good_class else "secondary",
                      width="stretch", shortcut=str(index) if index <= 9 else None, on_click=_answer,
                      args=(card, name, reviewer), help=f"key {index}" if index <= 9 else None)
    with st.container(key="controls", horizontal=True):
        st.button("Not sure", key="skip", width="stretch", shortcut="S", on_click=_skip, args=(card, reviewer),
                  help="skip: leave this part for someone else (key S)")
        st.button("Undo", key="undo", width="stretch", shortcut="U", on_click=_undo, args=(reviewer,),
                  disabled=not st.session_state[UNDO], help="take back your last verdict (key U)")
    st.metric("Model says", f"{card.decision.upper()} · {card.label}", help="decision and most likely class")
    st.metric("Defect score", f"{card.score:.2f}")
    if card.degraded:
        st.warning("Degraded mode: one of the models was missing when this part was inspected.")
    opinions = [{"model": name, "version": o.get("version"), "decision": o.get("decision", o.get("error")),
                 "score": o.get("score"), "threshold": o.get("threshold")}
                for name, o in card.opinions.items() if isinstance(o, dict)]
    if opinions:
        st.dataframe(pd.DataFrame(opinions), hide_index=True)
    st.caption("Class probabilities: " + ", ".join(f"{k} {v:.2f}" for k, v in card.scores.items()))
