"""What every page shares: the studio handle, the sidebar tool selector, prerequisite checks."""

from __future__ import annotations

import streamlit as st

from core.auth.roles import Permission
from core.config import Settings, load_settings
from core.errors import StudioError
from core.studio import Studio, open_studio
from core.tools import ToolInfo, create_tool, get_tool, list_tools
from pages.identity import current_reviewer, may

TOOL_KEY = "tool"
CREATED_KEY = "tool-created"  # a tool just created in the sidebar: selected at the next run


@st.cache_resource(show_spinner=False)
def _open(settings: Settings) -> Studio:
    return open_studio(settings)


def studio() -> Studio:
    """The process-wide studio for the current settings (engine and image store are thread-safe)."""
    try:
        return _open(load_settings())
    except StudioError as error:
        st.error(str(error))
        st.stop()


def render_sidebar() -> None:
    """The tool selector shared by all pages, and a form to create a tool."""
    names = [tool.name for tool in list_tools(studio())]
    with st.sidebar:
        st.caption(f"Station **{studio().settings.station}** (set STUDIO_STATION to rename it)")
        if names:
            if st.session_state.get(CREATED_KEY) in names:  # before the selector exists (it owns TOOL_KEY)
                st.session_state[TOOL_KEY] = st.session_state.pop(CREATED_KEY)
            if st.session_state.get(TOOL_KEY) not in names:
                st.session_state[TOOL_KEY] = names[0]
            st.selectbox("Inspection tool", names, key=TOOL_KEY)
        else:
            st.info("No tool yet: create one below.")
        if not may(Permission.MANAGE_TOOLS):
            return
        with st.expander("New tool", expanded=not names):
            with st.form("new-tool", clear_on_submit=True):
                name = st.text_input("Name", placeholder="e.g. solar-cell")
                classes = st.text_input("Classes (comma-separated)", value="good,defect",
                                        help="'good' is the pass class; add one name per defect type")
                if st.form_submit_button("Create tool", width="stretch"):
                    try:
                        tool = create_tool(studio(), name, classes, actor=current_reviewer())
                    except StudioError as error:
                        st.error(str(error))
                    else:
                        st.session_state[CREATED_KEY] = tool.name
                        st.rerun()


def require_tool() -> ToolInfo:
    """The selected tool, or a message and a stop when there is none."""
    name = st.session_state.get(TOOL_KEY)
    if not name:
        st.info("Create an inspection tool in the sidebar to start.")
        st.stop()
    try:
        return get_tool(studio(), name)
    except StudioError as error:
        st.error(str(error))
        st.stop()
