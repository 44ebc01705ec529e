"""Train and Models page section: the operating point (escape, false-reject and review rates) chosen
from the engineer's targets on the active versions' out-of-fold scores, applied with an audit entry."""

from __future__ import annotations

from collections.abc import Callable

import altair as alt
import pandas as pd
import streamlit as st

from core.audit import Actor
from core.errors import StudioError
from core.operating_point import service
from core.operating_point.choose import GOODS_ONLY_RATES, Choice, Targets
from pages.common import studio
from pages.signature import signature_field

GOALS = {"minimax": "smallest max(escape, false reject)", "max_escape": "at most this escape rate",
         "max_false_reject": "at most this false-reject rate", "cost_ratio": "least cost (an escape costs C rejects)"}


def _range(value: float | None, bounds: list | None) -> str:
    if value is None:
        return "unknown"
    return f"{value:.0%} ({bounds[0]:.0%}-{bounds[1]:.0%})" if bounds else f"{value:.0%}"


def _targets(goods_only: bool, stored: Targets | None) -> Targets:
    left, right = st.columns(2)
    max_review = left.slider("Largest review share", 0.0, 0.5, stored.max_review if stored else 0.2, 0.05,
                             key="op-review", help="share of parts sent to a person; move it to walk the trade-off")
    if goods_only:
        rate = right.radio("False-reject rate", GOODS_ONLY_RATES, index=2, format_func="{:.0%}".format,
                           horizontal=True, key="op-fr-goods",
                           help="good images only: the escape rate is unknown until defective parts are seen")
        return Targets(max_review, "max_false_reject", rate)
    goals = list(GOALS)
    goal = right.selectbox("Goal", goals, index=goals.index(stored.goal) if stored else 0,
                           format_func=GOALS.__getitem__, key="op-goal")
    value = None
    if goal == "cost_ratio":
        value = right.number_input("Cost of an escape, in false rejects", 0.1, 1000.0, 5.0, key="op-cost")
    elif goal != "minimax":
        value = right.slider("Rate", 0.01, 0.5, 0.1, 0.01, key="op-rate")
    return Targets(max_review, goal, value)


def _curve(choice: Choice) -> alt.Chart:
    rows = [{"review share": r["review"], "rate": r[name], "kind": label} for r in choice.curve
            for name, label in (("escape", "escapes"), ("false_reject", "false rejects"))]
    return alt.Chart(pd.DataFrame(rows)).mark_line(point=True).encode(
        x=alt.X("review share:Q", axis=alt.Axis(format="%")), y=alt.Y("rate:Q", axis=alt.Axis(format="%")),
        color="kind:N", tooltip=["review share:Q", "rate:Q", "kind:N"]).properties(height=200)


def _show(choice: Choice) -> None:
    promised = choice.promised.as_json()
    st.markdown(f"**Escapes** (of decided defectives): {_range(promised['escape'], promised['escape_range'])} · "
                f"**False rejects** (of decided goods): "
                f"{_range(promised['false_reject'], promised['false_reject_range'])} · "
                f"**Review share**: {promised['review']:.0%}")
    st.write(choice.sentence())
    for problem in choice.problems:
        st.warning(problem)
    bounds = [f"{name} at most {promised[key]:.0%} per {kind} part" for name, key, kind in
              (("escapes", "escape_bound", "defective"), ("false rejects", "false_reject_bound", "good"))
              if promised[key] is not None]
    st.caption(f"Rule: {choice.rule}. Ranges: Wilson 90 % from {choice.n_good} good and {choice.n_defect} "
               f"defective training images (out-of-fold scores). Guaranteed (split-conformal): {'; '.join(bounds)}.")
    if choice.curve:
        st.altair_chart(_curve(choice), width="stretch")


def render_operating_point(tool_name: str, actor: Callable[[], Actor]) -> None:
    """The operating-point section for ``tool_name``; ``actor()`` is asked only when something changes."""
    st.subheader("Operating point")
    try:
        status = service.status(studio(), tool_name)
        data = service.calibration(studio(), tool_name)
    except StudioError as error:
        st.info(f"No operating point yet: {error}")
        return
    for notice in status["notices"]:
        st.warning(notice)
    point = status["point"]
    if point is not None:
        st.caption(f"Applied for versions {point['versions']}: {point['sentence']} Rule: {point['rule']}.")
        refused = (point["promised"].get("adapted") or {}).get("refused")
        if refused:
            st.warning(f"Adapting to recent inspections was refused ({refused}); the applied point is the "
                       "training images' alone.")
    stored = Targets.from_json(point["targets"]) if point else None
    targets = _targets(not data.is_defect.any(), stored)
    try:
        choice, _ = service.propose(studio(), tool_name, targets)
    except StudioError as error:
        st.info(str(error))
        return
    _show(choice)
    password = signature_field("op-signature", "approved", "the operating point change")
    apply, remove = st.columns(2)
    if apply.button("Apply operating point", type="primary", key="op-apply",
                    help="the engine decides with these cut points (audited); no retraining"):
        try:
            service.apply(studio(), tool_name, targets, actor(), signature_password=password)
        except StudioError as error:
            st.error(str(error))
        else:
            st.rerun()
    if point is not None and remove.button("Remove operating point", key="op-clear",
                                           help="each model decides by its own threshold again (audited)"):
        try:
            service.clear(studio(), tool_name, actor(), password)
        except StudioError as error:
            st.error(str(error))
        else:
            st.rerun()
