"""Train: check the dataset, train a model in the background with progress and Cancel, read its
validation (accuracy, recall, confusion, ROC, the mistakes) and move the decision threshold."""

import altair as alt
import pandas as pd
import streamlit as st

from core.dataset_checks import count_warnings, duplicate_warning, find_near_duplicates
from core.errors import StudioError
from core.inspect.models import load_tool_models
from core.model_versions import list_versions
from core.samples import class_counts, samples_by_id
from core.tool_settings import change_settings
from core.training import tool_profile
from core.training_job import TrainingJob
from models.profiles import PROFILES
from models.registry import DEFAULT_METHOD
from pages.anomaly_panel import render_anomaly_training
from pages.common import require_tool, studio
from pages.identity import current_reviewer
from pages.operating_point_panel import render_operating_point
from pages.signature import show_signatures, signature_field
from pages.tiling_cost import render_tiling_cost

JOB_KEY = "training_job"
POLL_SECONDS = 0.5


@st.cache_data(show_spinner=False, max_entries=16)
def _near_duplicates(tool_name: str, counts_signature: tuple) -> str | None:
    return duplicate_warning(find_near_duplicates(studio(), tool_name))


def _show_dataset(tool_name: str) -> None:
    counts = class_counts(studio(), tool_name)
    st.subheader("Dataset")
    st.bar_chart(pd.DataFrame({"images": counts}), horizontal=True, height=60 + 30 * len(counts))
    for message in count_warnings(counts):
        st.warning(message)
    duplicates = _near_duplicates(tool_name, tuple(sorted(counts.items())))
    if duplicates:
        st.warning(duplicates)


@st.fragment(run_every=POLL_SECONDS)
def _training_progress() -> None:
    """Polls the background job; a full rerun shows its outcome once it ends."""
    job: TrainingJob | None = st.session_state.get(JOB_KEY)
    if job is None:
        return
    if job.finished:
        st.rerun()
    st.progress(job.progress, text=job.status_text)
    if st.button("Cancel training", key="cancel"):
        job.cancel()


def _show_outcome(job: TrainingJob) -> None:
    if job.result is not None:
        result = job.result
        st.success(f"Model v{result.version_id} trained on {result.n_samples} images in {result.seconds:.1f} s"
                   + (" and made active." if job.activate else " as a candidate: compare and promote it on the "
                      "Models page."))
        for name, reason in result.skipped:
            st.warning(f"Skipped {name}: {reason}")
    elif job.cancelled:
        st.info("Training cancelled; the active model is unchanged.")
    else:
        st.error(job.error or "training failed")


def _train_controls(tool_name: str) -> None:
    st.subheader("Train a classifier")
    job: TrainingJob | None = st.session_state.get(JOB_KEY)
    if job is not None and job.finished:
        _show_outcome(st.session_state.pop(JOB_KEY))
        job = None
    profile = st.radio("Network profile", list(PROFILES), index=list(PROFILES).index(tool_profile(studio(), tool_name)),
                       horizontal=True,
                       format_func=lambda p: PROFILES[p].description, disabled=job is not None)
    activate = st.toggle("Make it the active model when trained", value=True, disabled=job is not None,
                         help="Off: the new version is a candidate to compare with the active one on the "
                              "Models page. Either way the audit log records who trained it.")
    render_tiling_cost(tool_name, DEFAULT_METHOD, profile)
    if job is None and st.button("Train", type="primary", width="stretch"):
        st.session_state[JOB_KEY] = TrainingJob(studio(), tool_name, profile, activate=activate,
                                                actor=current_reviewer()).start()
        st.rerun()  # redraw without the Train button, with the progress
    if job is not None:
        _training_progress()


def _roc_chart(roc: dict) -> alt.Chart:
    curve = pd.DataFrame({"false positive rate": roc["fpr"], "true positive rate": roc["tpr"]})
    return alt.Chart(curve).mark_line(interpolate="step-after").encode(
        x="false positive rate:Q", y="true positive rate:Q").properties(height=220, title=f"ROC (AUC {roc['auc']:.3f})")


def _show_mistakes(tool_name: str, validation: dict) -> None:
    mistakes = validation.get("misclassified_samples", [])
    st.caption(f"Misclassified in cross-validation: {len(mistakes)} image(s) (defect score: out-of-fold)")
    by_id = {m["sample_id"]: m for m in mistakes}
    samples = samples_by_id(studio(), tool_name, list(by_id))
    for row in range(0, len(samples), 6):
        for column, sample in zip(st.columns(6), samples[row : row + 6]):
            score = by_id[sample.id]["score"]
            column.image(studio().images.viewable(sample.image_key),
                         caption=f"#{sample.id} {sample.label} · score {score:.2f}")


def _threshold_controls(tool_name: str, validation: dict) -> None:
    try:
        served = next(m for m in load_tool_models(studio(), tool_name).models if m.method == DEFAULT_METHOD)
    except StudioError as error:
        st.error(str(error))
        return
    except StopIteration:  # the policy leaves this model out
        return
    calibrated, band = validation["threshold"], validation["review_band"]
    manual = abs(served.threshold - calibrated) > 1e-9 or abs(served.review_band - band) > 1e-9
    st.caption(f"Calibrated threshold {calibrated:.3f} with review band ±{band:.3f} "
               f"(chosen on the training images by cross-validation). "
               + (f"In use: your threshold {served.threshold:.3f} ± {served.review_band:.3f}." if manual
                  else "In use: the calibrated values."))
    with st.form("threshold"):
        threshold = st.slider("Decision threshold (defect score)", 0.0, 1.0, float(served.threshold), 0.01)
        review = st.slider("Review band (±)", 0.0, 0.5, float(served.review_band), 0.01)
        password = signature_field("threshold-signature", "approved", "the threshold change")
        save, reset = st.columns(2)
        try:
            if save.form_submit_button("Use this threshold", width="stretch"):
                change_settings(studio(), tool_name, current_reviewer(), {f"threshold.{DEFAULT_METHOD}": threshold,
                                                                         f"review_band.{DEFAULT_METHOD}": review},
                                password)
                st.rerun()
            if reset.form_submit_button("Back to calibrated", width="stretch", disabled=not manual):
                change_settings(studio(), tool_name, current_reviewer(), {f"threshold.{DEFAULT_METHOD}": None,
                                                                         f"review_band.{DEFAULT_METHOD}": None},
                                password)
                st.rerun()
        except StudioError as error:
            st.error(str(error))
    show_signatures(studio(), "tool_settings", tool_name, limit=3)


def _show_active_model(tool_name: str) -> None:
    versions = list_versions(studio(), tool_name)
    if not versions:
        return
    active = next((v for v in versions if v.status == "active" and v.method == DEFAULT_METHOD), None)
    if active is None:
        return
    st.subheader(f"Active model: v{active.id} ({active.profile})")
    validation = active.validation
    if validation:
        first, second, third = st.columns(3)
        first.metric("Cross-validated balanced accuracy", f"{validation['balanced_accuracy']:.1%}",
                     help=f"{validation['cv_folds']}-fold cross-validation on the training images")
        if "roc" in validation:
            second.metric("ROC AUC (cross-validated)", f"{validation['roc']['auc']:.3f}")
            third.metric("Training images in the review band", validation["in_review_band"])
        left, right = st.columns(2)
        left.caption("Recall per class")
        left.dataframe(pd.DataFrame({"recall": validation["recall"]}).style.format("{:.1%}"))
        classes = list(validation["recall"])
        left.caption("Confusion matrix (rows: true class, columns: predicted)")
        left.dataframe(pd.DataFrame(validation["confusion"], index=classes, columns=classes))
        if "roc" in validation:
            right.altair_chart(_roc_chart(validation["roc"]), width="stretch")
            _show_mistakes(tool_name, validation)
            _threshold_controls(tool_name, validation)
    st.caption("All versions")
    st.dataframe(pd.DataFrame([v.as_row() for v in versions]), hide_index=True)


st.title("Train")
tool = require_tool()
_show_dataset(tool.name)
_train_controls(tool.name)
_show_active_model(tool.name)
render_anomaly_training(tool)
render_operating_point(tool.name, current_reviewer)
