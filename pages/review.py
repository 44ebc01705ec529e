"""Review: confirm or correct what the model flagged; verdicts become training samples."""

import streamlit as st

from core.errors import StudioError
from core.reviews import review_queue, submit_review
from pages.common import require_tool, studio

st.title("Review queue")
tool = require_tool()

items, waiting = review_queue(studio(), tool.name, limit=1)
if not items:
    st.success("Nothing to review: every flagged inspection has a verdict.")
    st.stop()

item = items[0]
st.caption(f"{waiting} inspection(s) waiting · oldest first")
left, right = st.columns([3, 2])
if item.image_key and studio().images.exists(item.image_key):
    left.image(str(studio().images.path(item.image_key)), width="stretch")
else:
    left.warning("The image of this inspection was not kept.")
with right:
    st.markdown(f"**Inspection #{item.inspection_id}** · {item.created_at:%Y-%m-%d %H:%M} UTC")
    st.metric("Model says", f"{item.decision.upper()} · {item.label}", help="decision and most likely class")
    st.metric("Defect score", f"{item.score:.2f}")
    st.write("What is this part?")
    for index, name in enumerate(tool.classes, start=1):
        kind = "primary" if name == tool.good_class else "secondary"
        if st.button(name.capitalize(), key=f"verdict-{name}", type=kind, width="stretch", shortcut=str(index)):
            try:
                submit_review(studio(), item.inspection_id, name)
            except StudioError as error:
                st.error(str(error))
            else:
                st.toast(f"#{item.inspection_id} marked {name}")
                st.rerun()
