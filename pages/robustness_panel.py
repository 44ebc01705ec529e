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
        augment = st.toggle("Train on varied copies too (light, shifts, rotation, motion blur, noise)",
                            current.augment, key="robust-augment",
                            help="the classifier learns from 3 random variants of each image, the anomaly model "
                                 "keeps 7 fixed variants of each good; applies to models trained from now on; "
                                 "the network sees about 4x (classifier) or 7x (anomaly model's goods) the images")
        tta = st.multiselect("Test-time variants (every inspection averages over them)", TTA_NAMES, list(current.tta),
                             format_func=lambda name: f"{name}: {HELP[name]}", key="robust-tta")
        if st.button("Save robustness settings", key="save-robustness"):
            try:
                change_settings(studio(), tool.name, actor, {"robustness.augment": augment,
                                                             "robustness.tta": list(tta)})
            except StudioError as error:
                st.error(str(error))
            else:
                st.toast("Saved")
