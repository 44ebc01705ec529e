"""Models page section: robustness to light, position and motion -- training-time augmentation and the
test-time variants every inspection of the tool averages over (``RobustnessOptions``), saved audited."""

from __future__ import annotations

from typing import Any

import streamlit as st

from core.audit import Actor
from core.errors import StudioError
from core.tool_settings import ToolSettings, change_settings
from models.augment_names import TTA_NAMES
from pages.common import studio

HELP = {"mirror": "the part mirrored left-right (one more network pass)",
        "shift": "the part moved by +-3 % of the region (two more passes)",
        "light": "darker and brighter mid-tones, gamma 0.85 and 1.18 (two more passes)"}


def render_robustness(tool: Any, actor: Actor) -> None:
    """The tool's robustness settings, with a save button."""
    with st.expander("Robustness: light, position, motion"):
        current = ToolSettings.from_json(tool.settings).robustness
        augment = st.toggle("Train on varied copies too (brighter light, shifts and turns, motion blur)",
                            current.augment, key="robust-augment",
                            help="both models also learn from 12 fixed variants of each training image (the "
                                 "anomaly model: of each good); applies to models trained from now on; the "
                                 "network sees 13x the images, so training takes about 13x longer")
        position = st.toggle("Position correction: find the part and cut the region where it lies",
                             current.position, key="robust-position",
                             help="models trained from now on keep the mean image of their goods; each inspection "
                                  "finds the part's shift and turn against it (a few ms) and judges the region "
                                  "moved with the part; parts that move or turn on the line keep their verdicts")
        tta = st.multiselect("Test-time variants (every inspection averages over them)", TTA_NAMES, list(current.tta),
                             format_func=lambda name: f"{name}: {HELP[name]}", key="robust-tta")
        if st.button("Save robustness settings", key="save-robustness"):
            try:
                change_settings(studio(), tool.name, actor, {"robustness.augment": augment,
                                                             "robustness.tta": list(tta),
                                                             "robustness.position": position})
            except StudioError as error:
                st.error(str(error))
            else:
                st.toast("Saved")
