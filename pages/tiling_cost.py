"""Train page piece: what a tiled model will cost (tiles, memory, time per part), said before training."""

from __future__ import annotations

import streamlit as st

from core.errors import StudioError
from core.training import tiling_cost
from pages.common import studio


def render_tiling_cost(tool_name: str, method: str, profile: str | None) -> None:
    """A caption with the tiling cost of training ``method`` now; nothing when tiling is off."""
    try:
        cost = tiling_cost(studio(), tool_name, method, profile)
    except StudioError as error:
        st.warning(f"Tiling: {error}")
        return
    if cost is not None:
        st.caption(f"Tiling ({cost['mode']}): {cost['tiles']} tiles of {cost['tile_px']} px on a "
                   f"{cost['roi'][0]} x {cost['roi'][1]} px part: about {cost['mb']:.0f} MB and "
                   f"{cost['ms'] / 1000:.1f} s to score a part (change with `tools set tiling.mode=...`).")
