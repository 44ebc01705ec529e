"""Train page section: the anomaly model (good images only), its goods' scores and the policy."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from core.anomaly_status import AnomalyStatus, anomaly_status
from core.errors import StudioError
from core.tool_settings import change_settings, policies
from core.tools import ToolInfo
from core.training import train
from pages.common import studio
from pages.identity import current_reviewer
from pages.signature import needs_signature, signature_field
from pages.tiling_cost import render_tiling_cost

STAGES = {"loading": 0.0, "features": 0.05, "synthetic defects": 0.3, "coreset": 0.7, "calibration": 0.8,
          "saving": 0.95, "done": 1.0}
POLICY_HELP = ("cross-check: both models must agree, a disagreement goes to review; "
               "with one model missing, the other decides and the inspection is marked degraded")


def _train_button(tool: ToolInfo) -> None:
    render_tiling_cost(tool.name, "anomaly", None)
    start, cancel_column = st.columns([1, 1])
    if cancel_column.button("Cancel anomaly training", key="cancel-anomaly"):
        st.info("Anomaly training cancelled; the active anomaly model is unchanged.")
    if not start.button("Train anomaly model (good images only)", key="train-anomaly", width="stretch"):
        return
    bar = st.progress(0.0, text="Starting...")

    def show(stage: str, fraction: float) -> None:
        weight = {"features": 0.25, "synthetic defects": 0.4, "coreset": 0.1, "calibration": 0.15}.get(stage, 0.05)
        bar.progress(min(1.0, STAGES.get(stage, 0.0) + weight * fraction), text=f"{stage.capitalize()}...")

    try:
        result = train(studio(), tool.name, "anomaly", progress=show, actor=current_reviewer())
    except StudioError as error:
        bar.empty()
        st.error(str(error))
        return
    st.success(f"Anomaly model v{result.version_id} trained on {result.n_samples} good images in "
               f"{result.seconds:.1f} s and made active.")
    for notice in result.notices:
        st.info(notice)


def _score_chart(status: AnomalyStatus) -> alt.LayerChart:
    scores = pd.DataFrame({"score": status.reference_scores})
    bars = alt.Chart(scores).mark_bar().encode(
        x=alt.X("score:Q", bin=alt.Bin(extent=[0, 1], step=0.05), title="anomaly score (out-of-fold)"),
        y=alt.Y("count()", title="good images"),
    )
    rule = alt.Chart(pd.DataFrame({"threshold": [status.threshold]})).mark_rule(color="#cf222e", size=2).encode(
        x="threshold:Q", tooltip=["threshold:Q"])
    return (bars + rule).properties(height=180)


def _status(tool: ToolInfo, status: AnomalyStatus) -> None:
    st.caption(f"Active anomaly model v{status.version_id}: {status.n_good} good images, "
               f"trained in {status.train_seconds:.1f} s. Scores of the training goods, each scored by a "
               "model built without it; the red line is the threshold.")
    st.altair_chart(_score_chart(status), width="stretch")
    bound = status.false_alarm_bound
    if status.more_goods_advised:
        st.warning(f"Add about {status.more_goods_advised} more good images and retrain to make the anomaly model "
                   f"more reliable (now at most {bound:.0%} of good parts go past the calibrated threshold).")
    else:
        st.caption(f"At most {bound:.0%} of good parts go past the calibrated threshold (0.5).")
    left, right = st.columns(2)
    choices = policies()
    policy = left.selectbox("Decision policy", choices, index=choices.index(status.policy), help=POLICY_HELP,
                            key="anomaly-policy")
    # 0 to 1: a threshold set elsewhere (Live page, ``tools set``) may lie outside 0.05 - 0.95
    threshold = right.slider("Anomaly threshold", 0.0, 1.0, float(status.threshold), 0.05, key="anomaly-threshold",
                             help="0.5 is the calibrated threshold; lower flags more parts (no retraining)")
    changes: dict[str, object] = {}
    if policy != status.policy:
        changes["policy"] = policy
    if abs(threshold - status.threshold) > 1e-9:  # only what was changed: an untouched threshold stays calibrated
        changes[f"threshold.{status.method}"] = threshold
    password = signature_field("anomaly-signature", "approved", "a change of policy or threshold")
    if changes and not password and needs_signature():
        st.info("Enter your password above to sign this change; until then the tool keeps its settings.")
    elif changes:
        try:
            change_settings(studio(), tool.name, current_reviewer(), changes, password)
        except StudioError as error:
            st.error(str(error))
        else:
            st.rerun()


def render_anomaly_training(tool: ToolInfo) -> None:
    """The anomaly section of the Train page for ``tool``."""
    st.subheader("Anomaly model (good images only)")
    st.caption("Learns what good parts look like from the good images alone and shows where a part looks "
               "different. Images with other labels are ignored.")
    _train_button(tool)
    status = anomaly_status(studio(), tool.name)
    if status is not None:
        _status(tool, status)
