"""Live: inspect a photo with the tool's active model (the camera stream comes with its own issue)."""

import pandas as pd
import streamlit as st

from core.errors import StudioError
from core.images import ImageRejectedError, decode_image
from core.inference import predict_image
from core.overlay import overlay_anomaly_map
from pages.common import require_tool, studio

BANNERS = {"pass": ("PASS", "#1a7f37"), "fail": ("FAIL", "#cf222e"), "review": ("REVIEW", "#bf8700")}

st.title("Live inspection")
tool = require_tool()
if tool.active_model_id is None and tool.active_anomaly_id is None:
    st.info(f"Tool **{tool.name}** has no trained model yet: train one on the Train page.")
    st.stop()

left, right = st.columns([3, 2])
with left:
    photo = st.file_uploader("Photo of a part", type=["png", "jpg", "jpeg", "bmp", "tif", "tiff"])
    record = st.toggle("Record this inspection", value=True)
if photo is None:
    right.info("Upload a photo to inspect it.")
    st.stop()

try:
    prediction = predict_image(studio(), tool.name, photo.name, photo.getvalue(), record=record, station="live")
except ImageRejectedError as error:
    st.error(f"{photo.name}: {error}")
    st.stop()
except StudioError as error:
    st.error(str(error))
    st.stop()

verdict = prediction.verdict
text, colour = BANNERS[verdict.decision]
with right:
    st.markdown(
        f"<div style='background:{colour};color:white;font-size:2.6rem;font-weight:700;text-align:center;"
        f"border-radius:12px;padding:0.6rem'>{text}</div>",
        unsafe_allow_html=True,
    )
    st.metric("Defect score", f"{verdict.score:.2f}", help=f"threshold {tool.settings['threshold']:.2f}")
    st.caption(f"Label **{verdict.label}** · model v{prediction.model_version} · {prediction.ms:.0f} ms"
               + (f" · inspection #{prediction.inspection_id}" if prediction.inspection_id else ""))
    if prediction.anomaly_score is not None:
        st.metric("Anomaly score", f"{prediction.anomaly_score:.2f}", help="0.5 is the calibrated threshold")
        st.caption(" · ".join(f"{kind}: **{o.get('decision', 'unavailable')}**" for kind, o in prediction.models.items())
                   + (" · degraded: one model decided alone" if prediction.degraded else ""))
    if prediction.scores:
        st.bar_chart(pd.DataFrame({"probability": prediction.scores}), horizontal=True,
                     height=60 + 30 * len(prediction.scores))
if prediction.anomaly is not None:  # where the part looks anomalous, at the photo's resolution
    overlay = overlay_anomaly_map(decode_image(photo.getvalue()).rgb, prediction.anomaly.map, prediction.anomaly.regions)
    left.image(overlay, caption=f"{photo.name}: anomaly map (red = unlike the good parts)")
else:
    left.image(photo.getvalue(), caption=photo.name)
