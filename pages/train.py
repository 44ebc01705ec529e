"""Train: check the dataset, train a model with progress, read its validation."""

import pandas as pd
import streamlit as st

from core.errors import StudioError
from core.model_versions import list_versions
from core.samples import class_counts
from core.training import MIN_IMAGES_PER_CLASS, train
from models.profiles import PROFILES
from pages.anomaly_panel import render_anomaly_training
from pages.common import require_tool, studio

st.title("Train")
tool = require_tool()

counts = class_counts(studio(), tool.name)
st.subheader("Dataset")
st.bar_chart(pd.DataFrame({"images": counts}), horizontal=True, height=60 + 30 * len(counts))
for name, count in counts.items():
    if count < MIN_IMAGES_PER_CLASS:
        st.warning(f"'{name}' has {count} image(s): add {MIN_IMAGES_PER_CLASS - count} more to train.")
present = [c for c in counts.values() if c]
if len(present) >= 2 and max(present) > 3 * min(present):
    st.warning("The classes are imbalanced (one has over three times the images of another).")

st.subheader("Train a classifier")
profile = st.radio("Network profile", list(PROFILES), horizontal=True,
                   format_func=lambda p: PROFILES[p].description)
start, cancel_column = st.columns([1, 1])
if cancel_column.button("Cancel training", key="cancel"):
    st.info("Training cancelled; the active model is unchanged.")
if start.button("Train", type="primary", width="stretch"):
    bar = st.progress(0.0, text="Starting...")
    stages = {"loading": 0.0, "features": 0.05, "validation": 0.8, "fit": 0.85, "saving": 0.95, "done": 1.0}

    def show(stage: str, fraction: float) -> None:
        weight = 0.75 if stage == "features" else 0.05
        bar.progress(min(1.0, stages.get(stage, 0.0) + weight * fraction), text=f"{stage.capitalize()}...")

    try:
        result = train(studio(), tool.name, profile=profile, progress=show)
    except StudioError as error:
        bar.empty()
        st.error(str(error))
    else:
        st.success(f"Model v{result.version_id} trained on {result.n_samples} images in "
                   f"{result.seconds:.1f} s and made active.")

versions = list_versions(studio(), tool.name)
if versions:
    active = next((v for v in versions if v.status == "active" and v.kind == "classifier"), versions[0])
    st.subheader(f"Active model: v{active.id} ({active.profile})")
    validation = active.validation
    if validation:
        left, right = st.columns(2)
        left.metric("Cross-validated balanced accuracy", f"{validation['balanced_accuracy']:.1%}",
                    help=f"{validation['cv_folds']}-fold cross-validation on the training images")
        left.dataframe(pd.DataFrame({"recall": validation["recall"]}).style.format("{:.1%}"))
        classes = list(validation["recall"])
        right.caption("Confusion matrix (rows: true class, columns: predicted)")
        right.dataframe(pd.DataFrame(validation["confusion"], index=classes, columns=classes))
    st.caption("All versions")
    st.dataframe(pd.DataFrame([v.as_row() for v in versions]), hide_index=True)

render_anomaly_training(tool)
