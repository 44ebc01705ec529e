"""Capture: add labelled images to the selected tool's dataset."""

import streamlit as st

from core.errors import StudioError
from core.samples import Candidate, add_images, class_counts, recent_samples
from pages.common import require_tool, studio

TARGET_PER_CLASS = 20

st.title("Capture")
tool = require_tool()
st.caption(f"Tool **{tool.name}**: upload photos of parts and label them. Aim for {TARGET_PER_CLASS}+ per class.")

counts_area = st.container()  # filled after an upload is handled, so the counts include it

with st.form("upload", clear_on_submit=True):
    label = st.selectbox("Label of these images", tool.classes)
    files = st.file_uploader("Images (PNG, JPEG, BMP, TIFF)", accept_multiple_files=True,
                             type=["png", "jpg", "jpeg", "bmp", "tif", "tiff"])
    submitted = st.form_submit_button("Add to dataset", type="primary")

if submitted:
    if not files:
        st.warning("Choose one or more images first.")
    else:
        bar = st.progress(0.0, text="Importing...")
        candidates = [Candidate(f.name, label, f.getvalue) for f in files]
        try:
            report = add_images(studio(), tool.name, candidates, "upload",
                                lambda done, total: bar.progress(done / total, text=f"Importing {done}/{total}"))
        except StudioError as error:
            st.error(str(error))
        else:
            bar.empty()
            st.success(f"Added {report.imported} image(s) as '{label}'"
                       + (f"; {report.duplicates} duplicate(s) skipped" if report.duplicates else ""))
            for name, reason in report.rejected:
                st.error(f"{name}: {reason}")

counts = class_counts(studio(), tool.name)
for column, (name, count) in zip(counts_area.columns(len(counts)), counts.items(), strict=True):
    column.metric(name, f"{count} / {TARGET_PER_CLASS}")

samples = recent_samples(studio(), tool.name, limit=12)
if samples:
    st.subheader("Latest samples")
    for row in range(0, len(samples), 6):
        for column, sample in zip(st.columns(6), samples[row : row + 6]):
            column.image(str(studio().images.path(sample.image_key)), caption=f"{sample.label} · {sample.source}")
