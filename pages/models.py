"""Model versions: retrain into a candidate, compare it with the active model, promote or roll back,
delete old versions; what the reviews added since the active model; the audit trail."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.errors import StudioError
from core.model_versions import (
    Comparison,
    compare_versions,
    delete_version,
    list_versions,
    promote,
    samples_since_active,
    train_candidate,
)
from core.reviews import queue_for_review, suggest_for_review
from core.tool_settings import ToolSettings, change_settings
from pages.audit_panel import render_audit_panel
from pages.bundle_panel import render_bundle_panel
from pages.common import require_tool, studio
from pages.evaluation_panel import render_evaluation
from pages.identity import current_reviewer
from pages.operating_point_panel import render_operating_point
from pages.robustness_panel import render_robustness
from pages.signature import show_signatures, signature_field

COMPARISON = "models-comparison"

st.title("Model versions")
render_bundle_panel()  # export / import tool bundles (issue 19); before the tool check: a new station has none
tool = require_tool()
actor = current_reviewer()
versions = list_versions(studio(), tool.name)

st.subheader("New training data since the active model")
gained = samples_since_active(studio(), tool.name)
columns = st.columns(len(gained))
for column, (name, count) in zip(columns, gained.items(), strict=True):
    column.metric(name, f"+{count}",
                  help="training samples added (reviews, uploads) since the active model was trained")

if st.button("Retrain into a candidate", type="primary", help="the active model stays until you promote the candidate"):
    bar = st.progress(0.0, text="Training a candidate...")
    try:
        result = train_candidate(studio(), tool.name, actor, progress=lambda stage, f: bar.progress(
            min(1.0, f), text=f"{stage.capitalize()}..."))
    except StudioError as error:
        bar.empty()
        st.error(str(error))
    else:
        bar.empty()
        st.success(f"Candidate v{result.version_id} trained on {result.n_samples} images. Compare it below.")
        st.session_state.pop(COMPARISON, None)
        versions = list_versions(studio(), tool.name)

if not versions:
    st.info("No model yet: train one on the Train page.")
    st.stop()

st.subheader("Versions")
st.dataframe(pd.DataFrame([v.as_row() for v in versions]), hide_index=True)
with st.expander("E-signatures of promotions and rollbacks"):
    for version in versions:
        show_signatures(studio(), "model_version", version.id, limit=3)

others = [v.id for v in versions if v.status != "active"]
if others:
    left, right = st.columns(2)
    methods = {v.id: v.method for v in versions}
    with left:
        chosen = st.selectbox(
            "Version", others,
            format_func=lambda i: f"v{i} ({next(f'{v.method}, {v.status}' for v in versions if v.id == i)})")
        # the active version of the same method replaces it (a classifier the classifier, ...)
        active = next((v for v in versions if v.status == "active" and v.method == methods[chosen]), None)
        older = active is not None and chosen < active.id
        label = f"Roll back to v{chosen}" if older else f"Promote v{chosen}"
        password = signature_field("promote-signature", "approved", f"the {label.lower()}")
        if st.button(label, type="primary", key="promote", help="predictions use it at once; the active one is kept"):
            try:
                promote(studio(), tool.name, chosen, actor, action="rollback" if older else "promote",
                        signature_password=password)
            except StudioError as error:
                st.error(str(error))
            else:
                st.toast(f"v{chosen} is now the active model")
                st.rerun()
        if st.button(f"Delete v{chosen}", key="delete"):
            try:
                delete_version(studio(), tool.name, chosen, actor)
            except StudioError as error:
                st.error(str(error))
            else:
                st.rerun()
    with right:
        if active is not None and st.button(f"Compare v{chosen} with active v{active.id}", key="compare"):
            with st.spinner("Evaluating both versions..."):
                st.session_state[COMPARISON] = compare_versions(studio(), tool.name, [chosen, active.id])


def _table(comparison: Comparison, dataset: str) -> pd.DataFrame:
    rows = {}
    for version_id, sets in comparison.versions.items():
        result = sets[dataset]
        rows[f"v{version_id}"] = {"images": result.n, "balanced accuracy": result.balanced_accuracy,
                                  **{f"recall {c}": r for c, r in result.recall.items()},
                                  "review rate": result.review_rate, "ms / image": result.ms_per_image}
    return pd.DataFrame(rows)


comparison: Comparison | None = st.session_state.get(COMPARISON)
if comparison is not None:
    st.subheader("Side by side")
    for dataset, title in (("held_out", "Held-out samples (never trained on)"),
                           ("reviewed", "Reviewed inspections (newest; a newer version may have learnt them)")):
        st.caption(title)
        st.dataframe(_table(comparison, dataset))
        matrices = st.columns(len(comparison.versions))
        for column, (version_id, sets) in zip(matrices, comparison.versions.items(), strict=True):
            if sets[dataset].n:
                column.caption(f"v{version_id} confusion (rows true, columns predicted)")
                column.dataframe(pd.DataFrame(sets[dataset].confusion, index=sets[dataset].classes,
                                              columns=sets[dataset].classes))

render_operating_point(tool.name, lambda: actor)
render_evaluation(tool, versions)

st.subheader("Which images would help most")
suggestions = suggest_for_review(studio(), tool.name, limit=10)
if suggestions:
    st.dataframe(pd.DataFrame([s.as_dict() for s in suggestions]), hide_index=True)
    if st.button(f"Send these {len(suggestions)} to the review queue", key="queue-suggestions"):
        try:
            added = queue_for_review(studio(), [s.inspection_id for s in suggestions], actor)
        except StudioError as error:
            st.error(str(error))
        else:
            st.toast(f"{added} inspection(s) added to the review queue")
            st.rerun()
else:
    st.caption("No unreviewed inspection with a kept image.")

with st.expander("Review settings"):
    current = ToolSettings.from_json(tool.settings)
    # the ranges reach a share set elsewhere (``tools set``), which may be higher than these defaults
    audit = st.slider("Share of passes drawn for audit", 0.0, max(0.2, current.audit_share), current.audit_share, 0.01)
    holdout = st.slider("Share of reviewed images held out for comparisons", 0.0, max(0.5, current.holdout_share),
                        current.holdout_share, 0.05)
    keep = st.slider("Share of passed parts whose image is kept", 0.0, 1.0, current.keep_pass_share, 0.01)
    signed = st.checkbox("Verdicts on failed parts need an e-signature", current.signed_review,
                         key="signed-review", help="signed review: a signed verdict cannot be undone, only corrected")
    password = (signature_field("review-settings-signature", "approved", "the change of signed review")
                if signed != current.signed_review else None)
    if st.button("Save settings", key="save-review-settings"):
        try:
            change_settings(studio(), tool.name, actor, {"audit_share": audit, "holdout_share": holdout,
                                                         "keep_pass_share": keep, "review.signed": signed},
                            password)
        except StudioError as error:
            st.error(str(error))
        else:
            st.toast("Saved")

render_robustness(tool, actor)
render_audit_panel(tool.name)
