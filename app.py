"""Visual inspection studio: the router. Pages live in pages/, services in core/."""

import streamlit as st

from pages.common import render_sidebar

st.set_page_config(page_title="Inspection studio", page_icon=":material/center_focus_strong:", layout="wide")

navigation = st.navigation(
    [
        st.Page("pages/capture.py", title="Capture", icon=":material/photo_camera:", url_path="capture", default=True),
        st.Page("pages/dataset.py", title="Dataset", icon=":material/photo_library:", url_path="dataset"),
        st.Page("pages/train.py", title="Train", icon=":material/model_training:", url_path="train"),
        st.Page("pages/live.py", title="Live", icon=":material/videocam:", url_path="live"),
        st.Page("pages/review.py", title="Review", icon=":material/fact_check:", url_path="review"),
        st.Page("pages/analytics.py", title="Analytics", icon=":material/monitoring:", url_path="analytics"),
        st.Page("pages/models.py", title="Models", icon=":material/history:", url_path="models"),
        st.Page("pages/line.py", title="Line", icon=":material/precision_manufacturing:", url_path="line"),
        st.Page("pages/fleet.py", title="Fleet", icon=":material/lan:", url_path="fleet"),
        st.Page("pages/api_tokens.py", title="API tokens", icon=":material/key:", url_path="api-tokens"),
    ]
)
render_sidebar()
navigation.run()
