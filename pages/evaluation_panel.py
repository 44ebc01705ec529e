"""Models page section: one version on the held-out images (curves, confusion, the three rates at its
operating point, its mistakes), the rates realised on the line from operators' verdicts, and the
anomaly model extended with the goods added since it was trained (a candidate in seconds)."""

from __future__ import annotations

from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from core.errors import StudioError
from core.evaluation import realised_rates, thumbnail
from core.model_versions import (
    ANOMALY_METHOD,
    Evaluation,
    VersionInfo,
    compare_versions,
    extend_anomaly,
    samples_since_active,
)
from core.tools import ToolInfo
from pages.common import studio
from pages.identity import current_reviewer

RESULT = "evaluation-panel"
MAX_THUMBNAILS = 24


def _percent(entry: dict[str, Any] | None) -> str:
    if not entry or entry.get("rate") is None:
        return "n/a"
    interval = entry.get("interval")
    span = f" ({interval[0]:.0%}-{interval[1]:.0%})" if interval and None not in interval else ""
    rests = f", {entry['n']} parts" if "n" in entry else f", rests on {entry.get('rests_on', 0)} verdicts"
    return f"{entry['rate']:.1%}{span}{rests}"


def _curve_chart(data: dict[str, list[float]], x: str, y: str, title: str) -> alt.Chart:
    return (alt.Chart(pd.DataFrame(data), title=title).mark_line(interpolate="step-after")
            .encode(x=alt.X(x, scale=alt.Scale(domain=[0, 1])), y=alt.Y(y, scale=alt.Scale(domain=[0, 1]))))


def _show(result: Evaluation) -> None:
    if not result.n:
        st.caption("No held-out image yet: the review keeps a share of verdicts out of training (Review settings).")
        return
    if result.rates is not None:
        rates = result.rates
        left, middle, right = st.columns(3)
        left.metric("Escapes", _percent(rates["escape"]).split(" ")[0],
                    help="defective parts passed automatically among those decided automatically; "
                         + _percent(rates["escape"]))
        middle.metric("False rejects", _percent(rates["false_reject"]).split(" ")[0],
                      help="good parts failed automatically among those decided automatically; "
                           + _percent(rates["false_reject"]))
        right.metric("To review", _percent(rates["review_share"]).split(" ")[0],
                     help="parts sent to a person; " + _percent(rates["review_share"]))
        st.caption(f"Escapes {_percent(rates['escape'])}; false rejects {_percent(rates['false_reject'])}; "
                   f"review {_percent(rates['review_share'])} (95 % intervals).")
    if result.curves is not None:
        st.caption(f"ROC AUC {result.curves['auc']:.3f}, average precision {result.curves['average_precision']:.3f} "
                   f"({result.curves['defective_share']:.0%} of these images are defective)")
        roc, pr = st.columns(2)
        roc.altair_chart(_curve_chart(result.curves["roc"], "fpr", "tpr", "ROC"), width="stretch")
        pr.altair_chart(_curve_chart(result.curves["pr"], "recall", "precision", "Precision-recall"), width="stretch")
    st.caption("Confusion (rows true, columns predicted; parts sent to review count with the side of the threshold)")
    st.dataframe(pd.DataFrame(result.confusion, index=result.classes, columns=result.classes))
    wrong = [m for m in result.misclassified if m["key"]][:MAX_THUMBNAILS]
    if wrong:
        st.caption(f"Decided wrongly ({len(result.misclassified)}): true label / decision, score")
        columns = st.columns(6)
        for index, item in enumerate(wrong):
            image = thumbnail(studio(), item["key"])
            if image is not None:
                columns[index % 6].image(image, caption=f"{item['label']} / {item['decision']}, {item['score']:.2f}")


def _realised(tool: ToolInfo, version_id: int) -> None:
    realised = realised_rates(studio(), tool.name, version_id)
    st.caption(f"On the line (v{version_id}: {realised['passes']} passes, {realised['fails']} fails), "
               f"from operators' verdicts: {realised['sample']}.")
    if realised["escape"] is None:
        st.info(f"Escape rate unknown yet: it {realised['note']}.")
        return
    st.write(f"Escapes about {_percent(realised['escape'])}; false rejects about {_percent(realised['false_reject'])} "
             f"(defective among audited passes {_percent(realised['defective_among_audited_passes'])}; among "
             f"reviewed fails {_percent(realised['defective_among_reviewed_fails'])}).")


def _extend_button(tool: ToolInfo, versions: list[VersionInfo]) -> None:
    if not any(v.method == ANOMALY_METHOD and v.status == "active" for v in versions):
        return
    gained = samples_since_active(studio(), tool.name, ANOMALY_METHOD).get(tool.good_class, 0)
    if not st.button(f"Add the {gained} new good image(s) to the anomaly model (candidate, seconds)",
                     key="extend-anomaly", disabled=gained == 0,
                     help="the active anomaly model's memory plus the goods added since (reviews, uploads); "
                          "compare it, then promote it"):
        return
    try:
        with st.spinner("Extending the anomaly model..."):
            result = extend_anomaly(studio(), tool.name, current_reviewer())
    except StudioError as error:
        st.error(str(error))
    else:
        st.success(f"Candidate v{result.version_id}: {result.n_samples} goods, built in {result.seconds:.1f} s. "
                   "Evaluate or compare it, then promote it.")


def render_evaluation(tool: ToolInfo, versions: list[VersionInfo]) -> None:
    """The section: evaluate any version, realised rates, and the anomaly model's quick extension."""
    st.subheader("Evaluate a version on held-out images")
    _extend_button(tool, versions)
    if not versions:
        return
    names = {v.id: f"v{v.id} ({v.method}, {v.status})" for v in versions}
    chosen = st.selectbox("Version to evaluate", list(names), key="evaluate-version", format_func=names.__getitem__)
    if st.button(f"Evaluate v{chosen}", key="evaluate"):
        try:
            with st.spinner("Evaluating..."):
                st.session_state[RESULT] = (chosen, compare_versions(studio(), tool.name, [chosen]).versions[chosen])
        except StudioError as error:
            st.error(str(error))
    stored = st.session_state.get(RESULT)
    if stored is not None and stored[0] in {v.id for v in versions}:
        version_id, sets = stored
        st.caption(f"v{version_id} on the held-out images (never trained on)")
        _show(sets["held_out"])
        _realised(tool, version_id)
